"""Admin authentication: with FFAAS_ADMIN_TOKEN set, every route needs `Authorization: Bearer <token>`.

Exempt (readable without the token): `GET /status`, and the conversation reads
`GET /conversation/<id>` and `GET /conversation/<id>/audit_item`, since conversation
ids are random UUIDs handed only to the caller of the run. HEAD counts as GET.
With no token configured the middleware is a pass-through.

Invariants: the presented token is compared as the bytes on the wire with the
configured token's UTF-8 bytes, in constant time (`hmac.compare_digest`); the scheme
`Bearer` is matched case-insensitively (RFC 9110). Neither token is ever logged or
echoed in an error message.
"""

from __future__ import annotations

import hmac
import re

from starlette.types import ASGIApp, Receive, Scope, Send

from shared.errors import error_response

_EXEMPT_READS = re.compile(r"/status|/conversation/[^/]+(/audit_item)?")


class AdminTokenMiddleware:
    """Pure ASGI middleware; answers 401 with the JSON error body and `WWW-Authenticate: Bearer`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.expected or scope["type"] != "http" or _is_exempt(scope):
            await self.app(scope, receive, send)
            return
        presented = _authorization(scope)
        if presented is None:
            message = "missing Authorization header: send `Authorization: Bearer <FFAAS_ADMIN_TOKEN>`"
        elif not hmac.compare_digest(_bearer_token(presented), self.expected):
            message = "wrong admin token in the Authorization header (FFAAS_ADMIN_TOKEN)"
        else:
            await self.app(scope, receive, send)
            return
        response = error_response(401, message, {"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


def _authorization(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name.lower() == b"authorization":
            return bytes(value)
    return None


def _bearer_token(authorization: bytes) -> bytes:
    """The token of `Bearer <token>`; for any other scheme something no configured token equals."""
    scheme, _, token = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        return b"\0"  # never equal: a configured token comes from the environment, which has no NUL
    return token.strip()


def _is_exempt(scope: Scope) -> bool:
    return (
        scope["method"] in ("GET", "HEAD") and _EXEMPT_READS.fullmatch(scope["path"].rstrip("/")) is not None
    )
