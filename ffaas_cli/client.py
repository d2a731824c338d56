"""Requests to one plane that either get the answer they expect or fail as one clear line.

`Plane.request` returns the response when its status is below 400; otherwise it raises
`Failure` with the API's own message (`{"code", "message"}`), its status, and a hint when the
cause is the token. A plane that cannot be reached fails the same way: "cannot reach the control
plane at http://127.0.0.1:3000: connection refused". `Plane.send` is for runs, whose answer is
the guest's and is returned whatever its status. Nothing here prints.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import httpx

from ffaas_cli.failures import Failure

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0
"""Long enough for a deploy (the upload, validation, and up to FFAAS_DEPLOY_ACK_TIMEOUT_MS) and
a processor save (esbuild, FFAAS_TRANSPILE_TIMEOUT_MS)."""


class Plane:
    """One plane's HTTP API: `name` ("control plane" or "data plane") names it in errors."""

    def __init__(
        self, name: str, base_url: str, *, token: str | None = None, token_source: str = "none"
    ) -> None:
        self.name = name
        self.base_url = base_url
        self.token_source = token_source
        headers = {"user-agent": "ffaas-cli"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        self._http = httpx.Client(headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def url(self, path: str) -> str:
        return self.base_url + path

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer to `method path`; a status of 400 or more raises `Failure` with its message."""
        response = self.send(method, path, **kwargs)
        if response.status_code >= 400:
            raise Failure(self.refusal(response))
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer to `method path`, whatever its status; only an unreachable plane fails.
        `timeout=` (seconds, or an `httpx.Timeout`) overrides `READ_TIMEOUT_S` for this request."""
        timeout = kwargs.get("timeout")
        if isinstance(timeout, int | float):
            kwargs["timeout"] = httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S)
        with self.reaching(kwargs.get("timeout")):
            return self._http.request(method, self.url(path), **kwargs)

    @contextlib.contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A response whose body is read as it arrives (the conversation stream)."""
        with self.reaching(), self._http.stream(method, self.url(path), **kwargs) as response:
            yield response

    @contextlib.contextmanager
    def reaching(self, timeout: httpx.Timeout | None = None) -> Iterator[None]:
        """Turn transport errors inside into "cannot reach the <plane> at <url>: <reason>"."""
        try:
            yield
        except httpx.TimeoutException as exc:
            read_limit = timeout.read if timeout is not None and timeout.read is not None else READ_TIMEOUT_S
            limit = CONNECT_TIMEOUT_S if isinstance(exc, httpx.ConnectTimeout) else read_limit
            raise Failure(
                f"cannot reach the {self.name} at {self.base_url}: no answer within {limit:g} s"
            ) from exc
        except httpx.TransportError as exc:
            raise Failure(f"cannot reach the {self.name} at {self.base_url}: {reason(exc)}") from exc

    def refusal(self, response: httpx.Response) -> str:
        """One line for a response of status 400 or more: the API's message, its status, a hint."""
        message = api_message(response)
        line = f"{message} (HTTP {response.status_code})"
        if response.status_code == 401:
            if self.token_source == "none":
                line += "; set FFAAS_ADMIN_TOKEN or run `ffaas login`"
            else:
                line += f"; the token comes from {self.token_source}"
        return line


def api_message(response: httpx.Response) -> str:
    """The `message` of the one JSON error body, or the start of whatever else was answered."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    text = " ".join(response.text.split())
    if not text:
        return response.reason_phrase or "no message"
    return text if len(text) <= 200 else text[:200] + "…"


def reason(exc: Exception) -> str:
    """ "connection refused" from "[Errno 111] Connection refused", and so on."""
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc).strip())
    if not text:
        return type(exc).__name__
    return text[0].lower() + text[1:]
