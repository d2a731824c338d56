"""Reading request bodies with a size cap, and as JSON.

Invariant: a body over its limit is refused from its Content-Length alone when it
declares one, and otherwise while streaming, without reading more than limit + 1 bytes.
"""

from __future__ import annotations

import json

from starlette.requests import Request

from shared.errors import BadRequest, PayloadTooLarge

MAX_JSON_BYTES = 1024 * 1024


async def read_capped_body(request: Request, limit: int, too_large: str) -> bytes:
    """The whole body, or `PayloadTooLarge(too_large)` once it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise BadRequest(f"Content-Length header must be a whole number, got {declared!r}")
        if int(declared) > limit:
            raise PayloadTooLarge(too_large)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(too_large)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request) -> object | None:
    """The body parsed as JSON, or None for an empty body."""
    body = await read_capped_body(
        request, MAX_JSON_BYTES, f"request body is larger than the {MAX_JSON_BYTES} bytes a JSON body may be"
    )
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc


async def read_json_object(request: Request) -> dict[str, object]:
    """The body as a JSON object; anything else is a `BadRequest`."""
    value = await read_json(request)
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object")
    return value
