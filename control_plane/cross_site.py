"""Refusing writes that a web page on another origin makes a browser send (cross-site request forgery).

With no admin token (allowed on a loopback address only) the admin API trusts whoever can
reach it, and a page on any site the developer visits can reach it: a "simple" cross-origin
POST (a form, or `fetch` with `mode: "no-cors"` and a `text/plain` body holding JSON) needs
no preflight, so the browser sends it and only hides the answer. Such a request always says
where it comes from: browsers send `Origin` on every cross-origin POST, PUT, DELETE and
PATCH, and `Sec-Fetch-Site` on every request. Clients that are not browsers (curl, the CLI)
send neither.

Invariants:
- A write (any method but GET, HEAD and OPTIONS) is refused with 403, before authentication
  and routing, when `Sec-Fetch-Site` is present and neither `same-origin` nor `none` (a
  user's own navigation), or when `Origin` is present and is not this control plane's own
  origin. So the console's own writes (same origin) go through; the token and CSRF checks
  behind this stay as they are.
- The own origin is what the browser addressed: the `Host` header (or, behind a proxy that
  rewrites it, `X-Forwarded-Host`, which a page cannot set without a preflight that this
  control plane never grants). An origin matches it by host and port, a `Host` without a
  port matching an origin on 80 or 443; the scheme is not compared, so a proxy terminating
  TLS changes nothing. An opaque origin (`null`: a sandboxed frame, a file) matches nothing.
- Reads are never refused here: a cross-origin page cannot read the answers (no CORS).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from shared.errors import error_response

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})
DEFAULT_PORTS = {"http": 80, "https": 443}


class CrossSiteWriteGuard:
    """Pure ASGI middleware: 403 (the JSON error body) for a cross-origin browser write."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in READ_METHODS:
            refusal = _refusal(scope)
            if refusal is not None:
                await error_response(403, refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _refusal(scope: Scope) -> str | None:
    """Why this write must be refused, or None."""
    headers = _headers(scope)
    fetch_site = headers.get("sec-fetch-site")
    origin = headers.get("origin")
    own = [value for name in ("host", "x-forwarded-host") if (value := _first(headers.get(name)))]
    if origin is not None and not any(_same_origin(origin, host) for host in own):
        served = f"{scope.get('scheme', 'http')}://{own[0]}" if own else "an unnamed host"
        return (
            f"cross-origin write refused: a page from {origin[:100]!r} may not change this control plane "
            f"({served}); use the console at that address, the CLI or curl"
        )
    if fetch_site is not None and fetch_site.lower() not in ALLOWED_FETCH_SITES:
        return (
            f"cross-site write refused (Sec-Fetch-Site: {fetch_site[:40]}): only this control plane's own "
            "pages may change it from a browser; use its console, the CLI or curl"
        )
    return None


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (the first of each), as latin-1 text."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


def _first(value: str | None) -> str:
    return (value or "").split(",")[0].strip()


def _same_origin(origin: str, host: str) -> bool:
    """`origin` (scheme://host[:port]) names `host` (a Host header, host[:port]). The scheme is not
    compared; a Host without a port matches an origin on its scheme's default port."""
    try:
        addressed = urlsplit(origin.strip())
        origin_port = addressed.port or DEFAULT_PORTS.get(addressed.scheme.lower())
        served = urlsplit(f"//{host}")
        served_port = served.port
    except ValueError:
        return False
    origin_host = (addressed.hostname or "").lower()
    if not origin_host or addressed.scheme.lower() not in DEFAULT_PORTS:  # "null", file:, ...
        return False
    if origin_host != (served.hostname or "").lower():
        return False
    return origin_port == served_port if served_port is not None else origin_port in DEFAULT_PORTS.values()
