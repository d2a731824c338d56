"""Reading admin request bodies as JSON (size-capped by `shared.request_body`)."""

from __future__ import annotations

import json

from starlette.requests import Request

from shared.errors import BadRequest
from shared.request_body import read_capped_body

MAX_JSON_BYTES = 1024 * 1024


async def read_json(
    request: Request, *, limit: int = MAX_JSON_BYTES, too_large: str | None = None
) -> object | None:
    """The body parsed as JSON, or None for an empty body; over `limit` bytes: 413 `too_large`."""
    body = await read_capped_body(
        request, limit, too_large or f"request body is larger than the {limit} bytes a JSON body may be"
    )
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc


async def read_json_object(
    request: Request, *, limit: int = MAX_JSON_BYTES, too_large: str | None = None
) -> dict[str, object]:
    """The body as a JSON object; anything else is a `BadRequest`."""
    value = await read_json(request, limit=limit, too_large=too_large)
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object")
    return value
