"""Admin authentication: with FFAAS_ADMIN_TOKEN set, every route needs `Authorization: Bearer <token>`.

Exempt (readable without the token): `GET /status`, `GET /openapi.json`, and the conversation reads
`GET /conversation/<id>` and `GET /conversation/<id>/audit_item`, since conversation
ids are random UUIDs handed only to the caller of the run (`/conversation/stream` is
not one of them: it needs the token, like the list). HEAD counts as GET.
With no token configured the middleware is a pass-through.

The console (`/`, `/ui/...`) signs people in itself (`console/session.py`) and guards its
own pages. A signed-in console session also stands for the token on the API, so the
console's scripts call the same routes as everyone: reads as they are, writes only with
the session's CSRF token in `X-CSRF-Token` (403 otherwise). An `Authorization` header,
when present, is what counts.

Invariants: the presented token is compared as the bytes on the wire with the
configured token's UTF-8 bytes, in constant time (`hmac.compare_digest`); the scheme
`Bearer` is matched case-insensitively (RFC 9110). Neither token is ever logged or
echoed in an error message.
"""

from __future__ import annotations

import hmac
import re

from starlette.types import ASGIApp, Receive, Scope, Send

from control_plane.console.session import CSRF_HEADER, SAFE_METHODS, csrf_matches, is_signed_in
from shared.errors import error_response

_EXEMPT_READS = re.compile(r"/status|/openapi\.json|/conversation/(?!stream$)[^/]+(/audit_item)?")
_CONSOLE = re.compile(r"/|/ui(/.*)?")


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
        session = scope.get("session")
        status, extra = 401, {"WWW-Authenticate": "Bearer"}
        if presented is None and is_signed_in(session):
            if scope["method"] in SAFE_METHODS or csrf_matches(session or {}, _header(scope, CSRF_HEADER)):
                await self.app(scope, receive, send)
                return
            status, extra = 403, {}
            message = f"a console write needs the session's CSRF token in the {CSRF_HEADER} header"
        elif presented is None:
            message = "missing Authorization header: send `Authorization: Bearer <FFAAS_ADMIN_TOKEN>`"
        elif not hmac.compare_digest(_bearer_token(presented), self.expected):
            message = "wrong admin token in the Authorization header (FFAAS_ADMIN_TOKEN)"
        else:
            await self.app(scope, receive, send)
            return
        response = error_response(status, message, extra)
        await response(scope, receive, send)


def _authorization(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name.lower() == b"authorization":
            return bytes(value)
    return None


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope["headers"]:
        if key.lower() == wanted:
            return bytes(value).decode("latin-1")
    return None


def _bearer_token(authorization: bytes) -> bytes:
    """The token of `Bearer <token>`; for any other scheme something no configured token equals."""
    scheme, _, token = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        return b"\0"  # never equal: a configured token comes from the environment, which has no NUL
    return token.strip()


def _is_exempt(scope: Scope) -> bool:
    path = scope["path"]
    if _CONSOLE.fullmatch(path) is not None:
        return True
    return scope["method"] in ("GET", "HEAD") and _EXEMPT_READS.fullmatch(path.rstrip("/")) is not None
