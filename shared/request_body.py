"""Reading a request body with a hard cap, without ever buffering more than the cap.

Invariant: a body over its limit is refused from its Content-Length alone when it
declares one, and otherwise while streaming, without reading more than limit + 1 bytes.

`read_capped_asgi_body` reads from the ASGI scope and `receive` themselves (the data plane's runs,
which skip Starlette's `Request`); `read_capped_body` from a Starlette `Request`, alike.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope

from shared.errors import BadRequest, PayloadTooLarge


async def read_capped_body(request: Request, limit: int, too_large: str) -> bytes:
    """The whole body, or `PayloadTooLarge(too_large)` once it is known to exceed `limit` bytes."""
    return await read_capped_asgi_body(request.scope, request.receive, limit, too_large)


async def read_capped_asgi_body(scope: Scope, receive: Receive, limit: int, too_large: str) -> bytes:
    """As `read_capped_body`; `ClientDisconnect` (Starlette's) if the client went away meanwhile."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            declared = value.decode("latin-1")
            if not declared.strip().isdigit():
                raise BadRequest(f"Content-Length header must be a whole number, got {declared!r}")
            if int(declared) > limit:
                raise PayloadTooLarge(too_large)
            break
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                received += len(chunk)
                if received > limit:
                    raise PayloadTooLarge(too_large)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
