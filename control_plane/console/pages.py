"""Rendering console pages: the Jinja2 environment, what every page knows, and who may see one.

Invariants:
- Autoescaping is on for every template, and no template marks guest data safe: request
  and response bodies, headers and log lines reach the page as text, never as markup.
- Every page's context has `auth` (is the admin token set, is this visitor signed in),
  `csrf` (the session's token, for scripts in a `<meta>` tag) and `assets` (are the built
  scripts and styles there; without them pages still render, unstyled, and say so).
- `page_or_sign_in` is the gate of every page that shows data: with FFAAS_ADMIN_TOKEN set
  and no signed-in session it redirects to the sign-in page and shows nothing.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from control_plane.console.comparison import diff_lines
from control_plane.console.security import STYLE_NONCE
from control_plane.console.session import csrf_token, is_signed_in
from control_plane.settings import Settings
from control_plane.storage.conversations import Conversation
from shared.errors import ServiceError, Unauthorized

TEMPLATES = Path(__file__).resolve().parent / "templates"
SIGN_IN_PATH = "/ui/login"
LANGUAGES = (("js", "JavaScript"), ("ts", "TypeScript"))

environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def json_text(value: Any) -> str:
    """`value` as JSON text, for showing (plain text: the template escapes it like any other)."""
    return json.dumps(value, ensure_ascii=False)


def ran_of(conversation: Conversation, named: dict[str, str]) -> str:
    """The name of what a conversation ran (an endpoint or processor), else its id."""
    what = conversation.endpoint_id or conversation.request_processor_id or ""
    return named.get(what, what)


environment.filters["json_text"] = json_text
environment.globals["ran_of"] = ran_of
environment.globals["diff_lines"] = diff_lines


@dataclass(frozen=True)
class AuthState:
    token_required: bool
    signed_in: bool


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def auth_state(request: Request) -> AuthState:
    required = bool(settings_of(request).admin_token)
    return AuthState(required, required and is_signed_in(request.session))


def may_see_data(request: Request) -> bool:
    state = auth_state(request)
    return not state.token_required or state.signed_in


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    settings = settings_of(request)
    page = environment.get_template(template).render(
        request=request,
        auth=auth_state(request),
        csrf=csrf_token(request.session),
        style_nonce=request.scope.get("state", {}).get(STYLE_NONCE, ""),
        assets=(settings.console_assets_dir / "console.js").is_file(),
        **context,
    )
    return HTMLResponse(page, status_code=status_code, headers={"Cache-Control": "no-store"})


Page = Callable[[Request], Awaitable[Response]]


def page_or_sign_in(page: Page) -> Page:
    """`page` for a visitor who may see data; a redirect to the sign-in page for anyone else."""

    async def guarded(request: Request) -> Response:
        if not may_see_data(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{SIGN_IN_PATH}?next={quote(target, safe='')}", status_code=303)
        try:
            return await page(request)
        except ServiceError as exc:  # an unknown id, a bad filter: said on a page, not in JSON
            return render(request, "error.html", status_code=exc.status, message=exc.message)

    guarded.__name__ = page.__name__
    guarded.__doc__ = page.__doc__
    return guarded


def require_sign_in(request: Request) -> None:
    """For the console's own JSON and stream routes: 401 unless the visitor may see data."""
    if not may_see_data(request):
        raise Unauthorized("sign in to the console first (FFAAS_ADMIN_TOKEN is set)")
