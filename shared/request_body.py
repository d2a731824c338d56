"""Reading a request body with a hard cap, without ever buffering more than the cap.

Invariant: a body over its limit is refused from its Content-Length alone when it
declares one, and otherwise while streaming, without reading more than limit + 1 bytes.
"""

from __future__ import annotations

from starlette.requests import Request

from shared.errors import BadRequest, PayloadTooLarge


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
