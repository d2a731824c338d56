"""Console pages for endpoints: the list (with the create form) and one endpoint.

One endpoint's page: its URL, the deploy form (a `.wasm` file uploaded with progress by
`frontend/deploy.js` to `POST /endpoint/<id>/deploy`), the deploy history newest first
with one-click rollback, the environment editor, the test-request form and its latest
conversations. Changes go through the JSON API (`auth.py` accepts the console session
with its CSRF token), so the console does exactly what the API does.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from control_plane.console.pages import page_or_sign_in, render
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
    return render(
        request,
        "endpoint.html",
        endpoint=endpoint,
        url=f"{found.settings.public_url}/{endpoint.id}",
        history=list(reversed(endpoint.deploy_history)),
        env=sorted(env.items()),
        recent=recent,
        request_lines=await conversation_store.request_lines(found.db, [c.id for c in recent]),
        max_module_bytes=found.settings.max_module_bytes,
    )


routes = [
    Route("/ui/endpoints", endpoints_page, methods=["GET"]),
    Route("/ui/endpoints/{endpoint_id}", endpoint_page, methods=["GET"]),
]
