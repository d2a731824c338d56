"""Headers that keep whatever a guest recorded from running in the console.

Every console response (`/`, `/ui/...`) gets a strict Content-Security-Policy: scripts,
images and connections from this origin only, no inline script at all, no plugins, no
framing, forms posting only here. Styles come from this origin, plus the `<style>`
elements that carry this response's random nonce: the code editor (CodeMirror) writes
its styles that way (`EditorView.cspNonce`), and pages hand it the nonce in
`<meta name="style-nonce">`. With autoescaped templates (`pages.py`) the policy is the
second wall: even markup that got onto a page could not run a script.
"""

from __future__ import annotations

import secrets

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STYLE_NONCE = "style_nonce"


def content_security_policy(style_nonce: str) -> str:
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            f"style-src 'self' 'nonce-{style_nonce}'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ]
    )


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class ConsoleSecurityHeaders:
    """Pure ASGI middleware adding the policy (with a fresh style nonce) and `SECURITY_HEADERS`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/" or path == "/ui" or path.startswith("/ui/")):
            await self.app(scope, receive, send)
            return

        nonce = secrets.token_urlsafe(18)
        scope.setdefault("state", {})[STYLE_NONCE] = nonce

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = content_security_policy(nonce)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
