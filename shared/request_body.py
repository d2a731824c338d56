"""Reading a request body with a hard cap, without ever buffering more than the cap."""

from __future__ import annotations

from starlette.requests import Request

from shared.errors import PayloadTooLarge


async def read_capped_body(
    request: Request, limit: int, *, setting: str, what: str = "request body"
) -> bytes:
    """The whole body, or `PayloadTooLarge` naming `limit` and `setting` as soon as it is exceeded."""
    too_large = PayloadTooLarge(f"{what} exceeds the limit of {limit} bytes ({setting})")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
