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
    check_parameters,
    conversation_filter,
    conversation_json,
    parse_cursor,
)
from control_plane.state import services
from control_plane.storage import conversations as store

STREAM_PARAMETERS = (*FILTER_PARAMETERS, "after")
# Headers a proxy needs to pass events on at once.
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


async def summaries(conversations: list[store.Conversation]) -> list[dict[str, Any]]:
    return [conversation_json(conversation) for conversation in conversations]


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
    if last_event_id:
        after = parse_cursor(last_event_id, "Last-Event-ID", "the id of an event of this stream")
    elif params.get("after"):
        after = parse_cursor(params["after"], "after", "a conversation cursor")
    else:
        after = latest
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
