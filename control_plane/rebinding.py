"""Refusing requests addressed to a name other than loopback while the admin API is open (DNS rebinding).

With no admin token the control plane listens on a loopback address only and trusts whoever
reaches it. A web page can still reach it: its site's name is made to resolve to 127.0.0.1
after the page has loaded (DNS rebinding), and from then on the browser treats the control
plane as that site's own origin, so the cross-site guard sees a same-origin request and the
page can read conversations and write. The browser always sends the name it resolved in
`Host`, and no page can change that header.

Invariants:
- Applies only when no admin token is set and the control plane listens on a loopback address
  (the default developer set-up). With a token, requests must carry it anyway; a
  non-loopback address without a token (FFAAS_ALLOW_INSECURE_ADMIN) is reached by names this
  process cannot know.
- Then every HTTP request whose `Host` is not a loopback name (`localhost`, `*.localhost`, a
  loopback IP, with any port) is refused with 403 and the one JSON error body, before routing.
  A request without `Host` (HTTP/1.0 tools) is let through: browsers always send it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from control_plane.settings import is_loopback_host
from shared.errors import error_response


class LoopbackHostGuard:
    """Pure ASGI middleware: 403 for a request naming a host that is not loopback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host")
            if host is not None and not _names_loopback(host):
                refusal = (
                    f"request for host {host[:100]!r} refused: with no FFAAS_ADMIN_TOKEN this control "
                    "plane answers only requests addressed to localhost or a loopback address (a web page "
                    "could otherwise reach it through DNS rebinding); set FFAAS_ADMIN_TOKEN to serve "
                    "other names"
                )
                await error_response(403, refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _names_loopback(host: str) -> bool:
    try:
        name = (urlsplit(f"//{host.strip()}").hostname or "").rstrip(".")
    except ValueError:
        return False
    return name == "localhost" or name.endswith(".localhost") or (bool(name) and is_loopback_host(name))
