"""Signing in and out of the console, and where `/` and `/ui/` lead.

- GET /ui/login: the form asking for FFAAS_ADMIN_TOKEN (with no token set, straight on).
- POST /ui/login (token, csrf, next): the right token starts a fresh session and
  redirects to `next` (only a `/ui/` path of this site); a wrong one answers 401 and the
  form again. POST /ui/logout (csrf) ends the session.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from control_plane.console.pages import auth_state, page_or_sign_in, render, settings_of
from control_plane.console.session import CSRF_FIELD, csrf_matches, sign_in, sign_out, token_matches
from shared.errors import BadRequest
from shared.request_body import read_capped_body

HOME = "/ui/conversations"
MAX_FORM_BYTES = 16 * 1024


def _next_page(raw: object) -> str:
    """Where to go after signing in: a path under /ui/ of this site, nothing else."""
    if isinstance(raw, str) and raw.startswith("/ui/") and not raw.startswith("/ui//") and "\\" not in raw:
        return raw
    return HOME


async def _form(request: Request) -> dict[str, str]:
    """An URL-encoded form of at most MAX_FORM_BYTES; the first value of each field."""
    body = await read_capped_body(
        request, MAX_FORM_BYTES, f"a sign-in form is at most {MAX_FORM_BYTES} bytes"
    )
    try:
        fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=8)
    except ValueError as exc:
        raise BadRequest(f"the sign-in form is not understood: {exc}") from exc
    return {name: values[0] for name, values in fields.items()}


async def home(request: Request) -> Response:
    return RedirectResponse(HOME, status_code=303)


async def sign_in_page(request: Request) -> Response:
    state = auth_state(request)
    next_page = _next_page(request.query_params.get("next"))
    if not state.token_required or state.signed_in:
        return RedirectResponse(next_page, status_code=303)
    return render(request, "login.html", next_page=next_page, error=None)


async def sign_in_submit(request: Request) -> Response:
    form = await _form(request)
    token, csrf, next_page = form.get("token"), form.get(CSRF_FIELD), _next_page(form.get("next"))
    if not csrf_matches(request.session, csrf):
        return render(
            request,
            "login.html",
            status_code=403,
            next_page=next_page,
            error="This form expired (or came from elsewhere). Please try again.",
        )
    if token is None or not token_matches(token, settings_of(request).admin_token):
        return render(
            request, "login.html", status_code=401, next_page=next_page, error="That is not the admin token."
        )
    sign_in(request.session)
    return RedirectResponse(next_page, status_code=303)


async def sign_out_submit(request: Request) -> Response:
    csrf = (await _form(request)).get(CSRF_FIELD)
    if csrf_matches(request.session, csrf):
        sign_out(request.session)
    return RedirectResponse("/ui/login", status_code=303)


@page_or_sign_in
async def unknown_page(request: Request) -> Response:
    return render(
        request, "error.html", status_code=404, message=f"There is no console page at {request.url.path}."
    )


routes = [
    Route("/", home, methods=["GET"]),
    Route("/ui", home, methods=["GET"]),
    Route("/ui/", home, methods=["GET"]),
    Route("/ui/login", sign_in_page, methods=["GET"]),
    Route("/ui/login", sign_in_submit, methods=["POST"]),
    Route("/ui/logout", sign_out_submit, methods=["POST"]),
]
not_found = Route("/ui/{path:path}", unknown_page, methods=["GET"])
