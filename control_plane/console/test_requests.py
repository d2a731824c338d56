"""POST /ui/test-request: the console's "send a test request", made by the control plane.

The browser cannot call the data plane itself without CORS headers on every run's
response (which the conversation would then have to record) and a Content-Security-Policy
open to another origin; so the control plane sends the request, to the data plane's public
URL (FFAAS_PUBLIC_URL) exactly as any caller would, and hands back the status, the
headers, the start of the body and the `FH-Conversation-Id` of the real run, whose page
the console then opens. The control plane runs no user code here: it is an HTTP client.

Input (JSON): {target: "endpoint"|"processor", id, entry?: "run_with_prelude"|"run",
method, path?, query?, headers?: [[name, value], ...], body?}. The target must exist;
the URL is always the public URL + the target's own path, so no one can aim this at
another host. The body is at most FFAAS_TEST_REQUEST_MAX_BYTES; the run's answer is
awaited at most FFAAS_TEST_REQUEST_TIMEOUT_MS. Needs a signed-in session and its CSRF token.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from control_plane.console.pages import require_sign_in
from control_plane.console.session import CSRF_HEADER, csrf_matches
from control_plane.routes.request_body import read_json_object
from control_plane.state import services
from control_plane.storage import endpoints as endpoint_store
from control_plane.storage import processors as processor_store
from control_plane.storage.database import Database
from shared.errors import BadRequest, NotFound, ServiceError

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
ENTRIES = ("run_with_prelude", "run")
SHOWN_BODY_BYTES = 16 * 1024
JSON_OVERHEAD_BYTES = 64 * 1024


class Forbidden(ServiceError):
    status = 403


class BadGateway(ServiceError):
    status = 502


async def send_test_request(request: Request) -> JSONResponse:
    require_sign_in(request)
    if not csrf_matches(request.session, request.headers.get(CSRF_HEADER)):
        raise Forbidden(f"a console write needs the session's CSRF token in the {CSRF_HEADER} header")
    found = services(request)
    limit = found.settings.test_request_max_bytes
    fields = await read_json_object(
        request,
        limit=limit * 6 + JSON_OVERHEAD_BYTES,
        too_large=f"a test request body may be at most {limit} bytes (FFAAS_TEST_REQUEST_MAX_BYTES)",
    )
    url = await _target_url(found.db, found.settings.public_url, fields)
    method = _text(fields, "method", "GET").upper()
    if not _TOKEN.fullmatch(method):
        raise BadRequest(f"method must be an HTTP method name, got {method[:40]!r}")
    query = _text(fields, "query", "").lstrip("?")
    if any(character in query for character in "# \r\n"):
        raise BadRequest("query must not contain spaces, line breaks or '#'")
    body = _text(fields, "body", "").encode("utf-8")
    if len(body) > limit:
        raise BadRequest(f"a test request body may be at most {limit} bytes (FFAAS_TEST_REQUEST_MAX_BYTES)")
    timeout_s = found.settings.test_request_timeout_ms / 1000
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False) as client:
        try:
            outgoing = client.build_request(
                method, url + (f"?{query}" if query else ""), headers=_headers(fields), content=body
            )
            answer = await client.send(outgoing, stream=True)
            try:
                shown = await _start_of_body(answer)
            finally:
                await answer.aclose()
        except httpx.TimeoutException as exc:
            raise BadGateway(
                f"the data plane at {url} did not answer within {found.settings.test_request_timeout_ms} ms "
                "(FFAAS_TEST_REQUEST_TIMEOUT_MS)"
            ) from exc
        except httpx.HTTPError as exc:
            raise BadGateway(
                f"the data plane at {url} (FFAAS_PUBLIC_URL) could not be reached: {exc}"
            ) from exc
    conversation_id = answer.headers.get("fh-conversation-id")
    return JSONResponse(
        {
            "status": answer.status_code,
            "headers": [[name, value] for name, value in answer.headers.items()],
            "body": shown.decode("utf-8", errors="replace"),
            "conversation_id": conversation_id,
            "conversation_url": f"/ui/conversations/{quote(conversation_id)}" if conversation_id else None,
        }
    )


async def _target_url(db: Database, public_url: str, fields: dict[str, object]) -> str:
    target, target_id = _text(fields, "target", ""), _text(fields, "id", "")
    if target == "endpoint":
        if await endpoint_store.get_endpoint(db, target_id) is None:
            raise NotFound(f"endpoint {target_id} not found")
        path = _text(fields, "path", "")
        if path and not path.startswith("/"):
            path = "/" + path
        if any(character in path for character in "?# \r\n") or "/../" in f"{path}/":
            raise BadRequest(
                "path must be a sub-path like /a/b, without '..', '?', '#', spaces or line breaks"
            )
        return f"{public_url}/{quote(target_id)}{path}"
    if target == "processor":
        if await processor_store.get_processor(db, target_id) is None:
            raise NotFound(f"processor {target_id} not found")
        entry = _text(fields, "entry", "run_with_prelude")
        if entry not in ENTRIES:
            raise BadRequest(f"entry must be one of {', '.join(ENTRIES)}, got {entry[:40]!r}")
        return f"{public_url}/processor/{quote(target_id)}/{entry}"
    raise BadRequest(f"target must be endpoint or processor, got {target[:40]!r}")


def _headers(fields: dict[str, object]) -> list[tuple[str, str]]:
    raw = fields.get("headers") or []
    if not isinstance(raw, list):
        raise BadRequest("headers must be a list of [name, value] pairs")
    headers: list[tuple[str, str]] = []
    for pair in raw:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)):
            raise BadRequest("headers must be a list of [name, value] pairs of strings")
        name, value = pair[0].strip(), pair[1].strip()
        if not _TOKEN.fullmatch(name):
            raise BadRequest(f"header name {name[:60]!r} is not a valid HTTP header name")
        if any(character in value for character in "\r\n\0"):
            raise BadRequest(f"the value of header {name} must not contain line breaks")
        headers.append((name, value))
    return headers


def _text(fields: dict[str, object], name: str, default: str) -> str:
    value = fields.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value


async def _start_of_body(answer: httpx.Response) -> bytes:
    kept = bytearray()
    async for chunk in answer.aiter_bytes():
        kept += chunk
        if len(kept) >= SHOWN_BODY_BYTES:
            break
    return bytes(kept[:SHOWN_BODY_BYTES])


routes = [Route("/ui/test-request", send_test_request, methods=["POST"])]
