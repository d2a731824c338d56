"""Reading admin request bodies as JSON (size-capped by `shared.request_body`).

A JSON body labelled with another media type than JSON is refused (415): a browser sends a
JSON type cross-origin only after a preflight this control plane never grants, and it always
labels a body it sends (`text/plain` or a form type), so a web page cannot slip JSON in as
`text/plain` or a form (see also `cross_site.py`). A body with no `Content-Type` at all comes
from a program, not a browser, and is read as JSON (`application/*+json` is JSON too). An
empty body needs no type.
"""

from __future__ import annotations

import json

from starlette.requests import Request

from shared.errors import BadRequest, UnsupportedMediaType
from shared.request_body import read_capped_body

MAX_JSON_BYTES = 1024 * 1024
JSON_MEDIA_TYPE = "application/json"


async def read_json(
    request: Request, *, limit: int = MAX_JSON_BYTES, too_large: str | None = None
) -> object | None:
    """The body parsed as JSON, or None for an empty body; over `limit` bytes: 413 `too_large`."""
    body = await read_capped_body(
        request, limit, too_large or f"request body is larger than the {limit} bytes a JSON body may be"
    )
    if not body.strip():
        return None
    given = request.headers.get("content-type")
    if given is not None and not _is_json(given):
        raise UnsupportedMediaType(
            f"a JSON request body needs the header Content-Type: {JSON_MEDIA_TYPE} (got {given[:80]!r}; "
            f"with curl: -H 'content-type: {JSON_MEDIA_TYPE}')"
        )
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == JSON_MEDIA_TYPE or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def read_json_object(
    request: Request, *, limit: int = MAX_JSON_BYTES, too_large: str | None = None
) -> dict[str, object]:
    """The body as a JSON object; anything else is a `BadRequest`."""
    value = await read_json(request, limit=limit, too_large=too_large)
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object")
    return value
