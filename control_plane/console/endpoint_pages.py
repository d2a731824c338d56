"""Console pages for endpoints: the list (with the create form) and one endpoint.

One endpoint's page: its URL, the deploy form (a `.wasm` file uploaded with progress by
`frontend/endpoints.js` to `POST /endpoint/<id>/deploy`, or `?activate=false` to upload it
without serving it), the deploy history newest first with one-click rollback, "test this
deploy against the last N runs" (a batch replay, its progress and report in place, then a
button to activate the deploy: `frontend/batches.js`, `replay_pages.py`) with the latest
such tests, the environment editor, the test-request form and its latest conversations.
Changes go through the JSON API (`auth.py` accepts the console session with its CSRF token),
so the console does exactly what the API does.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from control_plane.console.pages import page_or_sign_in, render
from control_plane.console.replay_options import ReplayChoices, newest_first, recent_batches
from control_plane.console.replay_pages import shown_batch
from control_plane.routes.conversations import list_page
from control_plane.routes.endpoints import endpoint_not_found
from control_plane.state import services
from control_plane.storage import conversations as conversation_store
from control_plane.storage import endpoints as store

RECENT_CONVERSATIONS = 10


@page_or_sign_in
async def endpoints_page(request: Request) -> Response:
    found = services(request)
    endpoints = await store.list_endpoints(found.db)
    return render(request, "endpoints.html", endpoints=endpoints, public_url=found.settings.public_url)


@page_or_sign_in
async def endpoint_page(request: Request) -> Response:
    found = services(request)
    endpoint_id = request.path_params["endpoint_id"]
    endpoint = await store.get_endpoint(found.db, endpoint_id)
    if endpoint is None:
        raise endpoint_not_found(endpoint_id)
    env = await store.get_env(found.db, endpoint_id) or {}
    recent, _ = await list_page(
        found.db,
        limit=RECENT_CONVERSATIONS,
        matching=conversation_store.ConversationFilter(endpoint_id=endpoint_id),
        before=None,
    )
    history = newest_first(endpoint.deploy_history)
    return render(
        request,
        "endpoint.html",
        endpoint=endpoint,
        choices=ReplayChoices("endpoint", endpoint=endpoint, deploys=history),
        url=f"{found.settings.public_url}/{endpoint.id}",
        history=history,
        env=sorted(env.items()),
        recent=recent,
        request_lines=await conversation_store.request_lines(found.db, [c.id for c in recent]),
        max_module_bytes=found.settings.max_module_bytes,
        batch=await shown_batch(found, request, endpoint_id=endpoint_id),
        batches=await recent_batches(found, endpoint_id=endpoint_id),
        max_batch_runs=found.settings.replay_batch_max_runs,
    )


routes = [
    Route("/ui/endpoints", endpoints_page, methods=["GET"]),
    Route("/ui/endpoints/{endpoint_id}", endpoint_page, methods=["GET"]),
]
