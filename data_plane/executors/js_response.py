"""What a processor's run answers, by the rules of SPEC.md (shared by every JS runtime).

In order: `main`'s return value (a string is the body with status 200; an object
with any of `code`, `headers`, `body` is the response; any other value is sent
as JSON); else, with the prelude, the last `fh.respond_with(...)`; else status
200 with the body of the last dispatched response; else the incoming body.

A response that breaks these rules or the rules of HTTP (a bad status, headers that are not
an object, a header `GuestResponse` refuses, a `data:` body that is not base64) raises a
`GuestError`, answered 500 with outcome `invalid_response`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from data_plane.executors.guest_response import GuestResponse
from shared.errors import GuestError

DATA_URL_PREFIX = "data:application/octet-stream;base64,"
RESPONSE_KEYS = frozenset({"code", "headers", "body"})


def response_from_result(result: dict[str, Any], incoming_body: bytes) -> GuestResponse:
    if result.get("has_value"):
        return _from_value(result["value"])
    if result.get("responded") is not None:
        return _from_value(result["responded"], force_object=True)
    dispatched = result.get("last_dispatched")
    if dispatched is not None:
        return _text_response(200, (), dispatched.get("body"))
    return GuestResponse(200, (), incoming_body)


def _from_value(value: Any, *, force_object: bool = False) -> GuestResponse:
    if isinstance(value, str):
        return _text_response(200, (), value)
    if isinstance(value, dict) and (force_object or RESPONSE_KEYS & value.keys()):
        return _text_response(
            _status(value.get("code", 200)), _headers(value.get("headers")), value.get("body")
        )
    return GuestResponse(200, (("content-type", "application/json"),), json.dumps(value).encode())


def _text_response(status: int, headers: tuple[tuple[str, str], ...], body: Any) -> GuestResponse:
    if body is None:
        data = b""
    elif isinstance(body, str):
        data = _data_url_bytes(body) if body.startswith(DATA_URL_PREFIX) else body.encode()
    else:
        data = json.dumps(body).encode()
        if not any(name == "content-type" for name, _ in headers):
            headers = (*headers, ("content-type", "application/json"))
    if not any(name == "content-type" for name, _ in headers):
        headers = (*headers, ("content-type", "text/plain; charset=utf-8"))
    return GuestResponse(status, headers, data)


def _data_url_bytes(body: str) -> bytes:
    try:
        return base64.b64decode(body[len(DATA_URL_PREFIX) :])
    except (binascii.Error, ValueError) as exc:
        raise GuestError(
            f"the processor's response body starts with {DATA_URL_PREFIX!r} but the rest is not "
            f"valid base64 ({exc})"
        ) from None


def _status(code: Any) -> int:
    if isinstance(code, bool) or not isinstance(code, int | float) or not 100 <= int(code) <= 599:
        raise GuestError(f"the processor returned an invalid status code: {json.dumps(code)[:40]}")
    return int(code)


def _headers(headers: Any) -> tuple[tuple[str, str], ...]:
    """`{name: value}` or `{name: [values]}` (names lower-cased); framing headers are dropped."""
    if headers is None:
        return ()
    if not isinstance(headers, dict):
        raise GuestError("the processor returned headers that are not an object")
    pairs: list[tuple[str, str]] = []
    for name, value in headers.items():
        lowered = str(name).lower()
        if lowered in ("content-length", "transfer-encoding", "connection"):
            continue
        for item in value if isinstance(value, list) else [value]:
            pairs.append((lowered, str(item)))
    return tuple(pairs)
