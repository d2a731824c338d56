"""A name wherever an id is expected: `ffaas endpoint deploy echo echo.wasm`.

An argument shaped like a UUID is taken as the id, as it is (the API then says whether it
exists). Anything else is looked up by exact name in the list of its kind: exactly one match is
its id; none, or several, fail with a line that says so (and, for several, their ids).
"""

from __future__ import annotations

import re
from typing import Any

from ffaas_cli.client import Plane
from ffaas_cli.failures import Failure

UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
KINDS = {"endpoint": "/endpoint", "processor": "/admin/processor"}


def looks_like_id(value: str) -> bool:
    return UUID.fullmatch(value) is not None


def resolve(control: Plane, kind: str, name_or_id: str) -> str:
    """The id of the `kind` ("endpoint" or "processor") named or identified by `name_or_id`."""
    if looks_like_id(name_or_id):
        return name_or_id.lower()
    listed: list[dict[str, Any]] = control.json("GET", KINDS[kind])
    return pick(kind, name_or_id, listed)


def pick(kind: str, name: str, listed: list[dict[str, Any]]) -> str:
    matching = [item["id"] for item in listed if item.get("name") == name]
    if len(matching) == 1:
        return str(matching[0])
    if not matching:
        raise Failure(f"no {kind} is named {name!r} (and it is not an id); `ffaas {kind} list` shows them")
    raise Failure(f"{len(matching)} {kind}s are named {name!r}: {', '.join(matching)}; use one of these ids")
