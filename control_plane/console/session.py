"""The console's sign-in session: a signed, expiring cookie, and the CSRF token every write carries.

The cookie is Starlette's `SessionMiddleware` (itsdangerous-signed JSON, with the time it
was signed): HttpOnly, SameSite=Strict, and over FFAAS_CONSOLE_SESSION_HOURS after sign-in
(the browser drops it then, and the server refuses an older signature anyway). Its key is
derived from FFAAS_ADMIN_TOKEN, so every control plane with the same token reads the same
sessions and changing the token signs everyone out; with no token (the admin API is open)
the key is random per process.

A session holds `csrf` (a random token, made on first use and made anew at sign-in, so a
token seen before sign-in is worthless after it) and `signed_in`. A write is accepted
only with the session's CSRF token, in the `X-CSRF-Token` header (scripts) or the `csrf`
form field (sign-in and sign-out forms); SameSite=Strict already keeps the cookie off
requests from other sites.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import MutableMapping
from typing import Any

from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware

from control_plane.settings import Settings

COOKIE = "ffaas_console"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
SAFE_METHODS = ("GET", "HEAD")

Session = MutableMapping[str, Any]


def session_middleware(settings: Settings) -> Middleware:
    return Middleware(
        SessionMiddleware,
        secret_key=session_key(settings.admin_token),
        session_cookie=COOKIE,
        max_age=settings.console_session_hours * 3600,
        same_site="strict",
    )


def session_key(admin_token: str) -> str:
    if not admin_token:
        return secrets.token_hex(32)
    return hmac.new(admin_token.encode(), b"ffaas console session", hashlib.sha256).hexdigest()


def csrf_token(session: Session) -> str:
    """The session's CSRF token, made on first use."""
    token = session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_matches(session: Session, presented: str | None) -> bool:
    expected = session.get("csrf")
    return (
        isinstance(expected, str)
        and bool(expected)
        and presented is not None
        and hmac.compare_digest(presented.encode(), expected.encode())
    )


def is_signed_in(session: Session | None) -> bool:
    return bool(session) and session is not None and session.get("signed_in") is True


def sign_in(session: Session) -> None:
    """A fresh session: signed in, with a new CSRF token."""
    session.clear()
    session["signed_in"] = True
    csrf_token(session)


def sign_out(session: Session) -> None:
    session.clear()


def token_matches(presented: str, admin_token: str) -> bool:
    return bool(admin_token) and hmac.compare_digest(presented.encode(), admin_token.encode())
