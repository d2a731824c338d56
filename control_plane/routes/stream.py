"""GET /conversation/stream: Server-Sent Events, one per stored conversation, live.

- Filters as the list has them: `endpoint_id`, `processor_id`, `outcome`.
- Each event is `event: conversation`, `id: <cursor>`, `data: <exactly one item of
  GET /conversation's list>`; the cursor is the one the list's `next`/`before` use.
- Where it starts: after the cursor in the `Last-Event-ID` header (what a reconnecting
  EventSource sends), else after `?after=<cursor>`, else after the last conversation
  stored when the request arrived (decided before the response starts, so a client that
  has the response headers gets every conversation stored from then on).
- A comment line every FFAAS_STREAM_HEARTBEAT_MS keeps proxies from closing it.
- Authentication is the list's (the admin token, `auth.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.routing import Route

from control_plane.conversation_feed import Describe, conversation_events
from control_plane.routes.conversations import (
    FILTER_PARAMETERS,
    FILTER_QUERY,
    check_parameters,
    conversation_filter,
    conversation_json,
    parse_cursor,
)
from control_plane.state import services
from control_plane.storage import conversations as store
from shared.openapi import Answer, error, operation, query, ref

STREAM_PARAMETERS = (*FILTER_PARAMETERS, "after")
# Headers a proxy needs to pass events on at once.
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


async def summaries(conversations: list[store.Conversation]) -> list[dict[str, Any]]:
    return [conversation_json(conversation) for conversation in conversations]


_CURSOR = {"type": "string", "pattern": "^[0-9]{1,18}$"}


@operation(
    "Follow conversations as they are stored (Server-Sent Events)",
    tag="conversations",
    description="One event per stored conversation: `event: conversation`, `id: <cursor>`, `data: <one "
    "item of GET /conversation's list, JSON>`, from the conversations stored after the request arrived "
    "(or after `Last-Event-ID`, or `after`); a comment every FFAAS_STREAM_HEARTBEAT_MS. It does not end.",
    parameters=[
        *FILTER_QUERY,
        query(
            "after",
            {"anyOf": [_CURSOR, {"const": ""}]},
            "start after this cursor (a Last-Event-ID header wins over it; empty: not)",
        ),
        {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "description": "resume after this event (what a reconnecting EventSource sends; empty: not)",
            "schema": {"anyOf": [_CURSOR, {"const": ""}]},
        },
    ],
    responses={
        200: Answer(
            "The stream: each event as its fields",
            {
                "text/event-stream": {
                    "type": "object",
                    "required": ["event", "id", "data"],
                    "properties": {
                        "event": {"const": "conversation"},
                        "id": _CURSOR,
                        "data": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": ref("ConversationSummary"),
                        },
                    },
                }
            },
        ),
        400: error("An unknown query parameter, a bad filter, or a cursor that is not one"),
        503: error("FFAAS_STREAM_MAX_CLIENTS streams are open already (Retry-After)"),
    },
)
async def stream_conversations(request: Request) -> EventSourceResponse:
    return await event_stream(request, STREAM_PARAMETERS, summaries)


async def event_stream(request: Request, known: tuple[str, ...], describe: Describe) -> EventSourceResponse:
    """The stream for `request` (also the console's, with its own `describe`)."""
    found = services(request)
    params = request.query_params
    check_parameters(params, known)
    matching = conversation_filter(params)
    last_event_id = request.headers.get("last-event-id")
    latest = await found.feed.refresh()  # the feed may be idle (no stream was open): read it now
    # Both are checked when given (a malformed `after` is refused even beside a Last-Event-ID); the
    # header wins, since a reconnecting EventSource sends it with the URL it first opened.
    given = parse_cursor(params["after"], "after", "a conversation cursor") if params.get("after") else None
    if last_event_id:
        after = parse_cursor(last_event_id, "Last-Event-ID", "the id of an event of this stream")
    else:
        after = latest if given is None else given
    found.feed.check_room()  # a 503 now, before the response starts, rather than a closed stream

    async def events() -> AsyncIterator[ServerSentEvent]:
        with found.feed.client():
            async for event in conversation_events(
                found.feed, found.db, after=after, matching=matching, describe=describe
            ):
                yield event

    return EventSourceResponse(
        events(), headers=STREAM_HEADERS, ping=found.settings.stream_heartbeat_ms / 1000
    )


routes = [Route("/conversation/stream", stream_conversations, methods=["GET"])]
