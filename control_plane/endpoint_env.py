"""Validation of an endpoint's environment variables (PUT /endpoint/<id>/env).

The data plane gives a WAGI guest the CGI variables of each request plus these. A user
variable must never shadow one the data plane sets, so the CGI names, every `HTTP_*`
header variable and every `X_*` name are refused rather than silently overridden.
"""

from __future__ import annotations

import re

from shared.errors import BadRequest

MAX_VARIABLES = 100
MAX_VALUE_CHARS = 4096
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED_PREFIXES = ("HTTP_", "X_")
RESERVED_NAMES = frozenset(
    {
        "AUTH_TYPE",
        "CONTENT_LENGTH",
        "CONTENT_TYPE",
        "GATEWAY_INTERFACE",
        "PATH_INFO",
        "PATH_TRANSLATED",
        "QUERY_STRING",
        "REMOTE_ADDR",
        "REMOTE_HOST",
        "REMOTE_USER",
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "SERVER_SOFTWARE",
    }
)


def validate_env(value: object) -> dict[str, str]:
    """Return `value` as a name -> value mapping, or raise `BadRequest` naming the offender."""
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object of environment variable names to string values")
    if len(value) > MAX_VARIABLES:
        raise BadRequest(f"too many environment variables: {len(value)} (at most {MAX_VARIABLES})")
    env: dict[str, str] = {}
    for name, variable in value.items():
        _check_name(name)
        if not isinstance(variable, str):
            raise BadRequest(f"environment variable {name}: value must be a string")
        if len(variable) > MAX_VALUE_CHARS:
            raise BadRequest(
                f"environment variable {name}: value is {len(variable)} characters "
                f"(at most {MAX_VALUE_CHARS})"
            )
        env[name] = variable
    return env


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise BadRequest(
            f"environment variable name {name!r} is invalid: "
            "use letters, digits and _, not starting with a digit"
        )
    if name.startswith(RESERVED_PREFIXES) or name in RESERVED_NAMES:
        raise BadRequest(
            f"environment variable name {name!r} is reserved: the data plane sets the CGI variables, "
            "HTTP_* and X_*"
        )
