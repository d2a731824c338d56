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
from shared.openapi import (
    TIMESTAMP,
    UUID,
    Answer,
    Schema,
    error,
    json_answer,
    json_body,
    nullable,
    operation,
    query,
    ref,
)

DRAFT_FIELDS = ("language", "runtime")
MODE_FIELDS = ("outbound", "allow_truncated")
SELECTION_FIELDS = ("limit", "since", "outcome")
DEFAULT_BATCH_LIMIT = 50
DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 200

_OUTBOUND = {
    "enum": list(OUTBOUND_MODES),
    "description": "recorded (default): outbound requests answered from the original run's record, "
    "nothing sent; live: sent for real",
}
_ALLOW_TRUNCATED = {"type": "boolean", "description": "replay runs whose recorded request body was cut"}
_DRAFT = {
    "code": {**nullable({"type": "string"}), "description": "a draft: code to run instead, saved nowhere"},
    "language": {
        **nullable({"enum": ["js", "ts", "javascript", "typescript"]}),
        "description": "the draft's (default: the processor's); only with code",
    },
    "runtime": {
        **nullable({"enum": ["v8", "wasm"]}),
        "description": "the draft's (default: the processor's); only with code",
    },
}


def _exactly_one(*fields: str) -> Schema:
    """Exactly one of `fields` is a string (the others absent or null); language and runtime only
    with code."""
    only_with_code = [
        {
            "if": {"required": [name], "properties": {name: {"not": {"type": "null"}}}},
            "then": {"required": ["code"], "properties": {"code": {"type": "string"}}},
        }
        for name in ("language", "runtime")
    ]
    return {
        "oneOf": [{"required": [field], "properties": {field: {"type": "string"}}} for field in fields],
        "allOf": only_with_code,
    }


_SELECTION = {
    "limit": {
        "type": "integer",
        "minimum": 1,
        "description": f"how many runs, newest first (default {DEFAULT_BATCH_LIMIT}; "
        "at most FFAAS_REPLAY_BATCH_MAX_RUNS)",
    },
    "since": {
        **nullable({"type": "string", "format": "date-time"}),
        "description": "only runs started at or after this time",
    },
    "outcome": {**nullable({"type": "string", "minLength": 1}), "description": "only runs that ended so"},
}
_PARTS = {"enum": ["status", "outcome", "headers", "body", "logs", "outbound"]}
_BATCH_FIELDS = {
    "id": UUID,
    "state": {"enum": ["running", "finished", "interrupted"]},
    "created_at": TIMESTAMP,
    "finished_at": nullable(TIMESTAMP),
    "endpoint_id": nullable(UUID),
    "processor_id": nullable(UUID),
    "target": {
        "type": "object",
        "description": "{deploy_id}, {processor_version_id} or {draft: {language, runtime, code_hash}}",
    },
    "outbound": {"enum": list(OUTBOUND_MODES)},
    "selection": {"type": "object", "required": ["limit", "since", "outcome"]},
    "total": {"type": "integer"},
    "done": {"type": "integer"},
    "replayed": {"type": "integer"},
    "same": {"type": "integer"},
    "differ": {"type": "integer"},
    "errors": {"type": "integer"},
    "differs_in": {
        "type": "object",
        "additionalProperties": {"type": "integer"},
        "description": "part -> how many runs differ in it",
    },
}
schemas: dict[str, Schema] = {
    "ConversationReplay": {
        "type": "object",
        "description": "Exactly one target: deploy_id (an endpoint's run), processor_version_id or code "
        "(a processor's run). Unknown fields are refused.",
        "properties": {
            "deploy_id": {**nullable({"type": "string"}), "description": "a deploy of the run's endpoint"},
            "processor_version_id": {
                **nullable({"type": "string"}),
                "description": "a version of the run's processor",
            },
            **_DRAFT,
            "outbound": _OUTBOUND,
            "allow_truncated": _ALLOW_TRUNCATED,
        },
        "additionalProperties": False,
        **_exactly_one("deploy_id", "processor_version_id", "code"),
    },
    "Replayed": {
        "type": "object",
        "required": ["conversation", "diff"],
        "properties": {"conversation": ref("Conversation"), "diff": ref("ReplayDiff")},
        "additionalProperties": False,
    },
    "ReplayDiff": {
        "type": "object",
        "description": "How the replay differs from the original run, part by part (status, outcome, "
        "headers, body, logs, outbound); `differs_in` lists the parts that differ.",
        "required": ["differs", "differs_in", "status", "outcome", "headers", "body", "logs", "outbound"],
        "properties": {
            "differs": {"type": "boolean"},
            "differs_in": {"type": "array", "items": _PARTS},
            **{part: {"type": "object", "required": ["differs"]} for part in _PARTS["enum"]},
        },
    },
    "EndpointRunsReplay": {
        "type": "object",
        "required": ["deploy_id"],
        "properties": {
            "deploy_id": {"type": "string", "description": "a deploy of this endpoint"},
            "allow_truncated": _ALLOW_TRUNCATED,
            **_SELECTION,
        },
        "additionalProperties": False,
    },
    "ProcessorRunsReplay": {
        "type": "object",
        "description": "Exactly one target: processor_version_id, or code (a draft). "
        "Unknown fields are refused.",
        "properties": {
            "processor_version_id": {
                **nullable({"type": "string"}),
                "description": "a version of this processor",
            },
            **_DRAFT,
            "outbound": _OUTBOUND,
            "allow_truncated": _ALLOW_TRUNCATED,
            **_SELECTION,
        },
        "additionalProperties": False,
        **_exactly_one("processor_version_id", "code"),
    },
    "ReplayBatch": {
        "type": "object",
        "required": [*_BATCH_FIELDS, "runs"],
        "properties": {
            **_BATCH_FIELDS,
            "runs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["original", "replay", "differs", "differs_in", "error"],
                    "properties": {
                        "original": UUID,
                        "replay": nullable(UUID),
                        "differs": nullable({"type": "boolean"}),
                        "differs_in": {"type": "array", "items": _PARTS},
                        "error": nullable({"type": "string"}),
                    },
                    "additionalProperties": False,
                },
            },
        },
        "additionalProperties": False,
    },
    "ReplayBatchSummary": {
        "type": "object",
        "description": "A batch's report without its runs",
        "required": list(_BATCH_FIELDS),
        "properties": _BATCH_FIELDS,
        "additionalProperties": False,
    },
}
TAG = "replay"
_STARTED = Answer(
    "The batch started, in the background: its report so far",
    {"application/json": ref("ReplayBatch")},
    {"Location": {"description": "/replay/<batch id>", "schema": {"type": "string"}}},
)
_BUSY = error(
    "FFAAS_REPLAY_MAX_BATCHES batches are running (see Retry-After), or Redis is unavailable "
    "(FFAAS_REDIS_URL) or did not answer within FFAAS_REDIS_TIMEOUT_MS (Retry-After)"
)


@operation(
    "Replay a recorded run against a deploy, a processor version or draft code",
    tag=TAG,
    description="The run's recorded request runs again on a data plane, recorded as a new conversation "
    "(`replay_of`), and is compared with the original. Outbound requests are answered from the record "
    "unless `outbound` is live.",
    body=json_body(ref("ConversationReplay")),
    responses={
        200: json_answer("The replay's conversation and how it differs from the original", ref("Replayed")),
        400: error(
            "Not a JSON object, an unknown field, not exactly one target, a target of the wrong kind, "
            "draft code that does not compile, or a bad `outbound` or `allow_truncated`"
        ),
        404: error("No conversation with this id, or the target is not one of its endpoint's or processor's"),
        409: error(
            "The run cannot be replayed as recorded: a body was cut when recorded (send allow_truncated), "
            "or no incoming request was recorded"
        ),
        413: error(
            "The draft code is larger than FFAAS_MAX_PROCESSOR_CODE_BYTES, or the replay is larger than "
            "a data plane takes (FFAAS_MAX_REPLAY_BYTES)"
        ),
        502: error("The data plane refused the replay (FFAAS_ADMIN_TOKEN must be the same on both planes)"),
        503: error(
            "No data plane answered within FFAAS_REPLAY_TIMEOUT_MS (FFAAS_DATA_PLANE_URL), one was "
            "overloaded (Retry-After), or Redis is unavailable (FFAAS_REDIS_URL) or did not answer within "
            "FFAAS_REDIS_TIMEOUT_MS (Retry-After)"
        ),
    },
)
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


@operation(
    "Replay an endpoint's recorded runs against one of its deploys, in the background",
    tag=TAG,
    body=json_body(ref("EndpointRunsReplay")),
    responses={
        202: _STARTED,
        400: error("Not a JSON object, an unknown field, no deploy_id, or a bad limit, since or outcome"),
        404: error("No endpoint with this id, or the deploy is not one of its own"),
        413: error("The body is larger than a JSON body may be"),
        503: _BUSY,
    },
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


@operation(
    "Replay a processor's recorded runs against a version or draft code, in the background",
    tag=TAG,
    body=json_body(ref("ProcessorRunsReplay")),
    responses={
        202: _STARTED,
        400: error(
            "Not a JSON object, an unknown field, not exactly one target, draft code that does not "
            "compile, or a bad outbound, allow_truncated, limit, since or outcome"
        ),
        404: error("No processor with this id, or the version is not one of its own"),
        413: error("The draft code is larger than FFAAS_MAX_PROCESSOR_CODE_BYTES"),
        503: _BUSY,
    },
)
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


@operation(
    "Read a batch replay's report, while it runs and after",
    tag=TAG,
    responses={200: json_answer("The report", ref("ReplayBatch")), 404: error("No batch with this id")},
)
async def get_batch(request: Request) -> JSONResponse:
    batch_id = request.path_params["batch_id"]
    report = await services(request).replay_batches.report(batch_id)
    if report is None:
        raise NotFound(f"replay batch {batch_id} not found")
    return JSONResponse(report)


@operation(
    "List batch replays, newest first",
    tag=TAG,
    parameters=[
        query("endpoint_id", {"type": "string"}, "only this endpoint's batches"),
        query("processor_id", {"type": "string"}, "only this processor's batches"),
        query(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT},
            f"how many (default {DEFAULT_LIST_LIMIT})",
        ),
    ],
    responses={
        200: json_answer(
            "The batches' reports, without their runs",
            {
                "type": "object",
                "required": ["batches"],
                "properties": {"batches": {"type": "array", "items": ref("ReplayBatchSummary")}},
                "additionalProperties": False,
            },
        ),
        400: error("An unknown query parameter, or a limit out of range"),
    },
)
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
