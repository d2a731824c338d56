"""Console pages for conversations: the list (filters, paging, live mode) and one conversation.

- GET /ui/conversations?endpoint_id=&processor_id=&outcome=&before=: last stored first,
  50 a page, paged with the API's cursors. The first page carries the cursor to follow
  live (`data-after`): `frontend/live.js` opens GET /ui/conversations/stream with it and
  adds each new run to the top, without a reload.
- GET /ui/conversations/stream: the same stream as GET /conversation/stream
  (`routes/stream.py`), for the signed-in console; each event's data is the API's
  summary plus what the list shows beside it (`method`, `path`, `ran`: the endpoint's or
  processor's name).
- GET /ui/conversations/<id>: the timeline (`timeline.py`), and "Replay against…": a form
  offering the deploys or versions the run can be replayed against, or a draft edited in
  place (`replay_options.py`), sent by `frontend/replay.js` to the replay API; the result
  is the comparison of `replay_pages.py`, shown in place.
"""

from __future__ import annotations

from typing import Any

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from control_plane.console.pages import LANGUAGES, page_or_sign_in, ran_of, render, require_sign_in
from control_plane.console.replay_options import choices_for
from control_plane.console.timeline import build_timeline
from control_plane.routes.conversations import (
    FILTER_PARAMETERS,
    check_parameters,
    conversation_filter,
    conversation_json,
    find_conversation,
    list_page,
    parse_cursor,
)
from control_plane.routes.processors import RUNTIMES
from control_plane.routes.stream import STREAM_PARAMETERS, event_stream
from control_plane.state import Services, services
from control_plane.storage import conversations as store
from control_plane.storage import endpoints as endpoint_store
from control_plane.storage import processors as processor_store
from control_plane.storage.database import Database
from shared.conversations import RunOutcome

PAGE_SIZE = 50
# The outcome filter offers every outcome a run can have.
OUTCOMES = tuple(outcome.value for outcome in RunOutcome)


async def names(db: Database) -> dict[str, str]:
    """Endpoint and processor names by id (both are few)."""
    named = {endpoint.id: endpoint.name for endpoint in await endpoint_store.list_endpoints(db)}
    named.update({processor.id: processor.name for processor in await processor_store.list_processors(db)})
    return named


@page_or_sign_in
async def conversations_page(request: Request) -> Response:
    found = services(request)
    params = request.query_params
    check_parameters(params, (*FILTER_PARAMETERS, "before"))
    matching = conversation_filter(params)
    before = params.get("before")
    latest = await store.last_stored_seq(found.db)  # read first: the page holds everything up to it
    page, following = await list_page(
        found.db,
        limit=PAGE_SIZE,
        matching=matching,
        before=None if before is None else parse_cursor(before, "before", "the `next` cursor of a page"),
    )
    named = await names(found.db)
    return render(
        request,
        "conversations.html",
        conversations=page,
        request_lines=await store.request_lines(found.db, [c.id for c in page]),
        named=named,
        following=following,
        first_page=before is None,
        follow_after=max([latest, *(c.seq for c in page[:1])]),
        matching=matching,
        outcomes=OUTCOMES,
        endpoints=await endpoint_store.list_endpoints(found.db),
        processors=await processor_store.list_processors(found.db),
    )


@page_or_sign_in
async def conversation_page(request: Request) -> Response:
    found = services(request)
    conversation, items = await find_conversation(found, request.path_params["conversation_id"])
    return render(
        request,
        "conversation.html",
        conversation=conversation,
        timeline=build_timeline(conversation, items),
        ran=ran_of(conversation, await names(found.db)),
        choices=await choices_for(found, conversation),
        languages=LANGUAGES,
        runtimes=RUNTIMES,
    )


async def console_stream(request: Request) -> EventSourceResponse:
    require_sign_in(request)
    found = services(request)

    async def describe(conversations: list[store.Conversation]) -> list[dict[str, Any]]:
        return await _describe(found, conversations)

    return await event_stream(request, STREAM_PARAMETERS, describe)


async def _describe(found: Services, conversations: list[store.Conversation]) -> list[dict[str, Any]]:
    lines = await store.request_lines(found.db, [c.id for c in conversations])
    named = await names(found.db)
    described = []
    for conversation in conversations:
        method, path = lines.get(conversation.id, ("", ""))
        described.append(
            {
                **conversation_json(conversation),
                "method": method,
                "path": path,
                "ran": ran_of(conversation, named),
            }
        )
    return described


routes = [
    Route("/ui/conversations", conversations_page, methods=["GET"]),
    Route("/ui/conversations/stream", console_stream, methods=["GET"]),
    Route("/ui/conversations/{conversation_id}", conversation_page, methods=["GET"]),
]
