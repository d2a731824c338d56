"""Conversations: read one (with or without its items), and list them.

Shapes (the fh-http seed's RequestConversation and AuditItem, plus FFAAS fields):
- conversation: {id, created_at, request_processor_id, endpoint_id, deploy_id, module_hash,
  processor_version_id, replay_of, replay_mode, finished_at, duration_ms, outcome, status,
  error, error_detail, audit_items_dropped, audit_items}; ids that do not apply are null
  (`request_processor_id` and `processor_version_id` for endpoint runs, and the reverse;
  `replay_of` and `replay_mode` for runs that are not replays); `audit_items_dropped` counts
  items the data plane left out (FFAAS_MAX_AUDIT_ITEMS).
- audit item: {kind, id, created_at, conversation_id, payload}, plus `inc` for requests
  and `request` for responses (present only when set), oldest first.
- GET /conversation?endpoint_id=&processor_id=&replay_of=&is_replay=&outcome=&since=&limit=&before=
  -> {"conversations": [... without audit_items], "next": cursor or null}, last stored first;
  pass `next` as `before`. A cursor is a conversation's `seq` (its place in storage order) in
  decimal: the live stream (`stream.py`) takes the same filters and resumes from the same cursors.

No race with the run: the data plane adds a conversation to the stream (or to its durable
outbox) before it answers, so an id not yet in SQLite makes the ingester catch up with the
stream (entries unread, or pending at any control plane, dead ones included) before the
route answers 404; if that cannot be done now (Redis unavailable, the database failing), 503
with `Retry-After` says why.  An id a data plane still holds in its outbox after a
Redis outage (`Keys.held_conversation`, checked before catching up: the data plane deletes
that key only after the record is on the stream) is answered 503 with `Retry-After`, saying
it is on its way; so is any unknown id while Redis cannot be reached.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from control_plane.ingest import CatchUpFailed
from control_plane.state import Services, services
from control_plane.storage import conversations as store
from control_plane.storage.database import Database
from shared.conversations import RunOutcome
from shared.errors import BadRequest, NotFound, Unavailable
from shared.openapi import TIMESTAMP, UUID, Schema, error, json_answer, nullable, operation, query, ref
from shared.redis import describe_failure
from shared.timestamps import format_timestamp

log = logging.getLogger("ffaas.control_plane.conversations")

RETRY_AFTER_S = "1"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
FILTER_PARAMETERS = ("endpoint_id", "processor_id", "replay_of", "is_replay", "outcome", "since")
LIST_PARAMETERS = (*FILTER_PARAMETERS, "limit", "before")
TAG = "conversations"

_HEADERS = {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}
_CAPTURED_BODY = {
    "body": {"type": "string", "description": "UTF-8 text, else data:application/octet-stream;base64,..."},
    "body_truncated": {
        "const": True,
        "description": "present when the body was cut (FFAAS_MAX_CAPTURED_BODY_BYTES)",
    },
    "body_bytes": {"type": "integer", "description": "the whole body's size, when it was cut"},
}
_SUMMARY_FIELDS = {
    "id": UUID,
    "created_at": TIMESTAMP,
    "request_processor_id": {**nullable(UUID), "description": "the processor that ran; null for endpoints"},
    "endpoint_id": {**nullable(UUID), "description": "the endpoint that ran; null for processors"},
    "deploy_id": nullable(UUID),
    "module_hash": nullable({"type": "string"}),
    "processor_version_id": {**nullable(UUID), "description": "the processor version that ran"},
    "replay_of": {**nullable(UUID), "description": "for a replay: the conversation it replayed"},
    "replay_mode": {**nullable({"type": "string"}), "description": "for a replay: live or recorded"},
    "finished_at": nullable(TIMESTAMP),
    "duration_ms": nullable({"type": "number"}),
    "outcome": {"enum": [outcome.value for outcome in RunOutcome], "description": "how the run ended"},
    "status": {"type": "integer", "description": "the HTTP status the caller got"},
    "error": {**nullable({"type": "string"}), "description": "the error message the caller got, if any"},
    "error_detail": {**nullable({"type": "string"}), "description": "guest internals: trap frames, stacks"},
    "audit_items_dropped": {
        "type": "integer",
        "minimum": 0,
        "description": "audit items left out of the record past FFAAS_MAX_AUDIT_ITEMS (the run went on)",
    },
}
schemas: dict[str, Schema] = {
    "ConversationSummary": {
        "type": "object",
        "required": list(_SUMMARY_FIELDS),
        "properties": _SUMMARY_FIELDS,
        "additionalProperties": False,
    },
    "Conversation": {
        "type": "object",
        "required": [*_SUMMARY_FIELDS, "audit_items"],
        "properties": {
            **_SUMMARY_FIELDS,
            "audit_items": {"type": "array", "items": ref("AuditItem"), "description": "oldest first"},
        },
        "additionalProperties": False,
    },
    "ConversationPage": {
        "type": "object",
        "required": ["conversations", "next"],
        "properties": {
            "conversations": {
                "type": "array",
                "items": ref("ConversationSummary"),
                "description": "last stored first",
            },
            "next": {**nullable({"type": "string"}), "description": "pass as `before` for the next page"},
        },
        "additionalProperties": False,
    },
    "AuditItem": {
        "type": "object",
        "description": "A request (inc 0: the incoming one; 1, 2, ...: outbound), a response (`request`: "
        "the id of the request answered) or a log line.",
        "required": ["kind", "id", "created_at", "conversation_id", "payload"],
        "properties": {
            "kind": {"enum": ["request", "response", "log"]},
            "id": UUID,
            "created_at": TIMESTAMP,
            "conversation_id": UUID,
            "payload": {"anyOf": [ref("RequestPayload"), ref("ResponsePayload"), {"type": "string"}]},
            "inc": {"type": "integer", "minimum": 0},
            "request": UUID,
        },
        "additionalProperties": False,
    },
    "RequestPayload": {
        "type": "object",
        "required": ["method", "path", "query", "headers", "body", "version"],
        "properties": {
            "method": {"type": "string"},
            "url": {"type": "string", "description": "outbound requests only"},
            "path": {"type": "string"},
            "query": {"type": "string"},
            "headers": _HEADERS,
            **_CAPTURED_BODY,
            "version": {"type": "string"},
        },
    },
    "ResponsePayload": {
        "type": "object",
        "description": "A response; for an outbound request that got none, only `error`.",
        "anyOf": [{"required": ["code", "headers", "body", "version"]}, {"required": ["error"]}],
        "properties": {
            "code": {"type": "integer"},
            "headers": _HEADERS,
            **_CAPTURED_BODY,
            "version": {"type": "string"},
            "error": {"type": "string"},
        },
    },
}
FILTER_QUERY = [
    query("endpoint_id", {"type": "string"}, "only the runs of this endpoint"),
    query("processor_id", {"type": "string"}, "only the runs of this processor"),
    query("replay_of", {"type": "string"}, "only the replays of this conversation"),
    query("is_replay", {"enum": ["true", "false", ""]}, "only replays (true), or only original runs (false)"),
    query("outcome", {"type": "string"}, "only the runs that ended so (completed, timed_out, ...)"),
    query(
        "since",
        {"anyOf": [{"type": "string", "format": "date-time"}, {"const": ""}]},
        "only runs started at or after this time",
    ),
]
"""The filters of the list and the stream; an empty value filters nothing."""
NOT_FOUND = error("No conversation with this id")
NOT_STORED_YET = error(
    "The conversation is not stored yet and the conversation stream could not be read: Redis is "
    "unavailable (FFAAS_REDIS_URL) or did not answer within FFAAS_REDIS_TIMEOUT_MS, or the run is on its "
    "way from a data plane's outbox (Retry-After)"
)


def conversation_json(conversation: store.Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "created_at": conversation.created_at,
        "request_processor_id": conversation.request_processor_id,
        "endpoint_id": conversation.endpoint_id,
        "deploy_id": conversation.deploy_id,
        "module_hash": conversation.module_hash,
        "processor_version_id": conversation.processor_version_id,
        "replay_of": conversation.replay_of,
        "replay_mode": conversation.replay_mode,
        "finished_at": conversation.finished_at,
        "duration_ms": conversation.duration_ms,
        "outcome": conversation.outcome,
        "status": conversation.status,
        "error": conversation.error,
        "error_detail": conversation.error_detail,
        "audit_items_dropped": conversation.audit_items_dropped,
    }


def item_json(item: store.StoredItem) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "kind": item.kind,
        "id": item.id,
        "created_at": item.created_at,
        "conversation_id": item.conversation_id,
        "payload": item.payload,
    }
    if item.inc is not None:
        shown["inc"] = item.inc
    if item.request is not None:
        shown["request"] = item.request
    return shown


@operation(
    "Read a conversation with its audit items",
    tag=TAG,
    public=True,
    description="Readable without the admin token: conversation ids are random UUIDs handed only to "
    "the caller of the run (FH-Conversation-Id). A conversation is readable as soon as its run answered.",
    responses={
        200: json_answer("The run and its audit items", ref("Conversation")),
        404: NOT_FOUND,
        503: NOT_STORED_YET,
    },
)
async def get_conversation(request: Request) -> JSONResponse:
    conversation, items = await find_conversation(services(request), request.path_params["conversation_id"])
    return JSONResponse(full_conversation_json(conversation, items))


@operation(
    "Read a conversation's audit items",
    tag=TAG,
    public=True,
    responses={
        200: json_answer("The items, oldest first", {"type": "array", "items": ref("AuditItem")}),
        404: NOT_FOUND,
        503: NOT_STORED_YET,
    },
)
async def get_audit_items(request: Request) -> JSONResponse:
    _, items = await find_conversation(services(request), request.path_params["conversation_id"])
    return JSONResponse([item_json(item) for item in items])


@operation(
    "List conversations, last stored first",
    tag=TAG,
    parameters=[
        *FILTER_QUERY,
        query(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            f"page size (default {DEFAULT_LIMIT})",
        ),
        query(
            "before", {"type": "string", "pattern": "^[0-9]{1,18}$"}, "the `next` cursor of the previous page"
        ),
    ],
    responses={
        200: json_answer("One page of conversations (without their audit items)", ref("ConversationPage")),
        400: error(
            "An unknown query parameter, a `limit` out of range, a `before` that is not a cursor, "
            "an `is_replay` that is not true or false, or a `since` that is not an RFC 3339 timestamp"
        ),
    },
)
async def list_conversations(request: Request) -> JSONResponse:
    params = request.query_params
    check_parameters(params, LIST_PARAMETERS)
    limit = _limit(params.get("limit"))
    before = params.get("before")
    page, following = await list_page(
        services(request).db,
        limit=limit,
        matching=conversation_filter(params),
        before=None if before is None else parse_cursor(before, "before", "the `next` cursor of a page"),
    )
    return JSONResponse({"conversations": [conversation_json(c) for c in page], "next": following})


def full_conversation_json(conversation: store.Conversation, items: list[store.StoredItem]) -> dict[str, Any]:
    """The conversation as `GET /conversation/<id>` shows it, with its audit items."""
    return {**conversation_json(conversation), "audit_items": [item_json(item) for item in items]}


async def list_page(
    db: Database, *, limit: int, matching: store.ConversationFilter, before: int | None
) -> tuple[list[store.Conversation], str | None]:
    """One page of the listing, last stored first, and the cursor of the next page (None at the end)."""
    conversations = await store.list_conversations(db, limit=limit + 1, matching=matching, before=before)
    page = conversations[:limit]
    return page, (cursor_of(page[-1]) if len(conversations) > limit else None)


def check_parameters(params: Mapping[str, str], known: tuple[str, ...]) -> None:
    for name in params:
        if name not in known:
            raise BadRequest(f"unknown query parameter {name!r}; known: {', '.join(known)}")


def conversation_filter(params: Mapping[str, str]) -> store.ConversationFilter:
    """The filters of a listing or stream request; an empty value filters nothing."""
    return store.ConversationFilter(
        endpoint_id=params.get("endpoint_id") or None,
        processor_id=params.get("processor_id") or None,
        outcome=params.get("outcome") or None,
        replay_of=params.get("replay_of") or None,
        is_replay=_boolean(params.get("is_replay") or None, "is_replay"),
        since=parse_since(params.get("since") or None),
    )


def cursor_of(conversation: store.Conversation) -> str:
    return str(conversation.seq)


def parse_cursor(raw: str, name: str, what: str) -> int:
    """A cursor given as `name`; anything but a decimal `seq` is a 400 saying what `name` must be."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise BadRequest(f"{name} must be {what} (a whole number), got {raw[:40]!r}")
    return int(raw)


async def find_conversation(
    found: Services, conversation_id: str
) -> tuple[store.Conversation, list[store.StoredItem]]:
    """The stored conversation; if missing, catch up with the stream once and look again."""
    stored = await store.get_conversation(found.db, conversation_id)
    if stored is None and _is_uuid(conversation_id):
        try:
            holder = await found.redis.get(found.keys.held_conversation(conversation_id))
            await found.ingester.catch_up()
        except (CatchUpFailed, RedisError, OSError) as exc:
            log.warning("catching up with the conversation stream failed: %s", exc)
            raise Unavailable(
                f"conversation {conversation_id} is not stored yet and cannot be looked for now: "
                f"{_why_not(exc)}; retry later",
                headers={"Retry-After": RETRY_AFTER_S},
            ) from exc
        stored = await store.get_conversation(found.db, conversation_id)
        if stored is None and holder is not None:
            plane = holder.decode(errors="replace") if isinstance(holder, bytes) else str(holder)
            raise Unavailable(
                f"conversation {conversation_id} is on its way: data plane {plane} answered the run "
                "while Redis was unavailable and is writing its record from its outbox; retry shortly",
                headers={"Retry-After": RETRY_AFTER_S},
            )
    if stored is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return stored


def _why_not(exc: Exception) -> str:
    if isinstance(exc, CatchUpFailed):
        return str(exc)
    return f"the conversation stream cannot be read: {describe_failure(exc)}"


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def parse_since(raw: str | None) -> str | None:
    """`since` as stored timestamps are written (RFC 3339, UTC, microseconds, Z), to compare as text."""
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise BadRequest(
            f"since must be an RFC 3339 timestamp, e.g. 2024-01-09T23:45:48Z, got {raw!r}"
        ) from None
    return format_timestamp(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def _boolean(raw: str | None, name: str) -> bool | None:
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise BadRequest(f"{name} must be true or false, got {raw!r}")
    return raw == "true"


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}, got {raw!r}")
    return int(raw)


routes = [
    Route("/conversation", list_conversations, methods=["GET"]),
    Route("/conversation/{conversation_id}", get_conversation, methods=["GET"]),
    Route("/conversation/{conversation_id}/audit_item", get_audit_items, methods=["GET"]),
]
