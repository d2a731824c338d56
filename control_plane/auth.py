"""Admin authentication: with FFAAS_ADMIN_TOKEN set, every route needs `Authorization: Bearer <token>`.

Exempt (readable without the token): `GET /status`, and the conversation reads
`GET /conversation/<id>` and `GET /conversation/<id>/audit_item`, since conversation
ids are random UUIDs handed only to the caller of the run. HEAD counts as GET.
With no token configured the middleware is a pass-through. The comparison is
constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
import re

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.errors import error_response

_EXEMPT_READS = re.compile(r"/status|/conversation/[^/]+(/audit_item)?")


class AdminTokenMiddleware:
    """Pure ASGI middleware; answers 401 with the JSON error body and `WWW-Authenticate: Bearer`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.expected or scope["type"] != "http" or _is_exempt(scope):
            await self.app(scope, receive, send)
            return
        presented = Headers(scope=scope).get("authorization")
        if presented is None:
            message = "missing Authorization header: send `Authorization: Bearer <FFAAS_ADMIN_TOKEN>`"
        elif not hmac.compare_digest(presented.encode(), self.expected):
            message = "wrong admin token in the Authorization header (FFAAS_ADMIN_TOKEN)"
        else:
            await self.app(scope, receive, send)
            return
        response = error_response(401, message, {"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


def _is_exempt(scope: Scope) -> bool:
    return (
        scope["method"] in ("GET", "HEAD") and _EXEMPT_READS.fullmatch(scope["path"].rstrip("/")) is not None
    )
