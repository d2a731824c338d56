"""Replay routes: one recorded run, or a batch of an endpoint's or processor's runs, against a target.

- POST /conversation/<id>/replay {target, "outbound"?, "allow_truncated"?} -> 200
  {"conversation": <the replay, as GET /conversation/<id> shows it>, "diff": <replay_diff>}.
- POST /endpoint/<id>/replay {"deploy_id", "limit"?, "since"?, "outcome"?, "allow_truncated"?}
  and POST /admin/processor/<id>/replay {"processor_version_id" | "code" (+ "language",
  "runtime"), "outbound"?, "limit"?, "since"?, "outcome"?, "allow_truncated"?} -> 202 the
  batch's report (`replay_batches`), `Location: /replay/<batch-id>`; always in the background.
- GET /replay/<batch-id> -> the report, while it runs and after; GET /replay?endpoint_id=
  &processor_id=&limit= -> {"batches": [reports without runs]}, newest first.

A target is one of `deploy_id` (endpoint runs), `processor_version_id` or draft `code`
(processor runs): `routes/replay_targets.py`. `outbound` is "recorded" (default: outbound
requests answered from the original run's record, nothing sent) or "live". Unknown fields
are refused (400), so a misspelt option is never silently ignored.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from control_plane.replay import OUTBOUND_MODES
from control_plane.replay_batches import Selection
from control_plane.routes.conversations import find_conversation, full_conversation_json, parse_since
from control_plane.routes.endpoints import endpoint_not_found
from control_plane.routes.processors import processor_not_found, read_processor_body
from control_plane.routes.replay_targets import TARGET_FIELDS, resolve_target
from control_plane.state import Services, services
from control_plane.storage import endpoints as endpoint_store
from control_plane.storage import processors as processor_store
from shared.errors import BadRequest, NotFound

DRAFT_FIELDS = ("language", "runtime")
MODE_FIELDS = ("outbound", "allow_truncated")
SELECTION_FIELDS = ("limit", "since", "outcome")
DEFAULT_BATCH_LIMIT = 50
DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 200


async def replay_conversation(request: Request) -> JSONResponse:
    found = services(request)
    body = await _body(request, found, (*TARGET_FIELDS, *DRAFT_FIELDS, *MODE_FIELDS))
    outbound, allow_truncated = _mode(body)
    original = await find_conversation(found, request.path_params["conversation_id"])
    conversation = original[0]
    target = await resolve_target(
        found,
        body,
        endpoint_id=conversation.endpoint_id,
        processor_id=None if conversation.endpoint_id else conversation.request_processor_id,
    )
    replayed = await found.replayer.replay(
        original, target, outbound=outbound, allow_truncated=allow_truncated
    )
    return JSONResponse(
        {"conversation": full_conversation_json(replayed.conversation, replayed.items), "diff": replayed.diff}
    )


async def replay_endpoint_runs(request: Request) -> JSONResponse:
    found = services(request)
    endpoint_id = request.path_params["endpoint_id"]
    body = await _body(request, found, ("deploy_id", "allow_truncated", *SELECTION_FIELDS))
    if await endpoint_store.get_endpoint(found.db, endpoint_id) is None:
        raise endpoint_not_found(endpoint_id)
    target = await resolve_target(found, body, endpoint_id=endpoint_id, processor_id=None)
    _, allow_truncated = _mode(body)
    report = await found.replay_batches.start(
        {"endpoint_id": endpoint_id},
        target,
        outbound="recorded",
        allow_truncated=allow_truncated,
        selection=_selection(body, found),
    )
    return _accepted(report)


async def replay_processor_runs(request: Request) -> JSONResponse:
    found = services(request)
    processor_id = request.path_params["processor_id"]
    fields = ("processor_version_id", "code", *DRAFT_FIELDS, *MODE_FIELDS, *SELECTION_FIELDS)
    body = await _body(request, found, fields)
    if await processor_store.get_processor(found.db, processor_id) is None:
        raise processor_not_found(processor_id)
    target = await resolve_target(found, body, endpoint_id=None, processor_id=processor_id)
    outbound, allow_truncated = _mode(body)
    report = await found.replay_batches.start(
        {"processor_id": processor_id},
        target,
        outbound=outbound,
        allow_truncated=allow_truncated,
        selection=_selection(body, found),
    )
    return _accepted(report)


async def get_batch(request: Request) -> JSONResponse:
    batch_id = request.path_params["batch_id"]
    report = await services(request).replay_batches.report(batch_id)
    if report is None:
        raise NotFound(f"replay batch {batch_id} not found")
    return JSONResponse(report)


async def list_batches(request: Request) -> JSONResponse:
    params = request.query_params
    known = ("endpoint_id", "processor_id", "limit")
    for name in params:
        if name not in known:
            raise BadRequest(f"unknown query parameter {name!r}; known: {', '.join(known)}")
    raw = params.get("limit", str(DEFAULT_LIST_LIMIT))
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIST_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIST_LIMIT}, got {raw!r}")
    limit = int(raw)
    batches = await services(request).replay_batches.list(
        limit=limit, endpoint_id=params.get("endpoint_id"), processor_id=params.get("processor_id")
    )
    return JSONResponse({"batches": batches})


async def _body(request: Request, found: Services, known: tuple[str, ...]) -> dict[str, Any]:
    body = await read_processor_body(request, found.settings)
    unknown = [name for name in body if name not in known]
    if unknown:
        raise BadRequest(f"unknown field {json.dumps(unknown[0])}; known: {', '.join(known)}")
    return body


def _mode(body: dict[str, Any]) -> tuple[str, bool]:
    outbound = body.get("outbound", "recorded")
    if outbound not in OUTBOUND_MODES:
        raise BadRequest(f"outbound must be one of {', '.join(OUTBOUND_MODES)}, got {json.dumps(outbound)}")
    allow_truncated = body.get("allow_truncated", False)
    if not isinstance(allow_truncated, bool):
        raise BadRequest(f"allow_truncated must be true or false, got {json.dumps(allow_truncated)}")
    return str(outbound), allow_truncated


def _selection(body: dict[str, Any], found: Services) -> Selection:
    maximum = found.settings.replay_batch_max_runs
    limit = body.get("limit", DEFAULT_BATCH_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= maximum:
        raise BadRequest(
            f"limit must be a whole number from 1 to {maximum} (FFAAS_REPLAY_BATCH_MAX_RUNS), "
            f"got {json.dumps(limit)}"
        )
    since, outcome = body.get("since"), body.get("outcome")
    if since is not None and not isinstance(since, str):
        raise BadRequest("since must be an RFC 3339 timestamp string")
    if outcome is not None and (not isinstance(outcome, str) or not outcome):
        raise BadRequest('outcome must be a non-empty string, e.g. "completed"')
    return Selection(limit=limit, since=parse_since(since), outcome=outcome)


def _accepted(report: dict[str, Any]) -> JSONResponse:
    return JSONResponse(report, status_code=202, headers={"Location": f"/replay/{report['id']}"})


routes = [
    Route("/conversation/{conversation_id}/replay", replay_conversation, methods=["POST"]),
    Route("/endpoint/{endpoint_id}/replay", replay_endpoint_runs, methods=["POST"]),
    Route("/admin/processor/{processor_id}/replay", replay_processor_runs, methods=["POST"]),
    Route("/replay", list_batches, methods=["GET"]),
    Route("/replay/{batch_id}", get_batch, methods=["GET"]),
]
