"""Console pages for processors: the list, a new one, and one processor (its editor).

The editor page is a form (name, language, runtime, code) that `frontend/editor.js`
turns into a CodeMirror editor with JavaScript/TypeScript highlighting; saving sends the
form to `POST /admin/processor` or `PUT /admin/processor/<id>`, and esbuild's error
(`code does not compile: <line>:<column>: ...`) is shown at its line. The processor page
also has the version history (each version's code on a page of its own, one-click rollback
through `POST /admin/processor/<id>/rollback`), "test this version (or the unsaved code in the
editor) against the last N runs" (a batch replay with its progress and report in place,
`frontend/batches.js`, `replay_pages.py`), the test-request form and its latest conversations.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from control_plane.console.pages import LANGUAGES, page_or_sign_in, render
from control_plane.console.replay_options import ReplayChoices, newest_first, recent_batches
from control_plane.console.replay_pages import shown_batch
from control_plane.routes.conversations import list_page
from control_plane.routes.processor_versions import version_not_found
from control_plane.routes.processors import RUNTIMES, processor_not_found
from control_plane.state import services
from control_plane.storage import conversations as conversation_store
from control_plane.storage import processor_versions as versions
from control_plane.storage import processors as store

RECENT_CONVERSATIONS = 10
STARTER_CODE = """async function main(fh, request) {
  fh.log("got", request.method, request.path);
  return { code: 200, headers: { "content-type": "application/json" }, body: { seen: request.body } };
}
"""


@page_or_sign_in
async def processors_page(request: Request) -> Response:
    processors = await store.list_processors(services(request).db)
    return render(request, "processors.html", processors=processors)


@page_or_sign_in
async def new_processor_page(request: Request) -> Response:
    return render(
        request,
        "processor.html",
        processor=None,
        name="",
        language="js",
        runtime="v8",
        code=STARTER_CODE,
        languages=LANGUAGES,
        runtimes=RUNTIMES,
        recent=[],
        request_lines={},
    )


@page_or_sign_in
async def processor_page(request: Request) -> Response:
    found = services(request)
    processor_id = request.path_params["processor_id"]
    processor = await store.get_processor(found.db, processor_id)
    if processor is None:
        raise processor_not_found(processor_id)
    recent, _ = await list_page(
        found.db,
        limit=RECENT_CONVERSATIONS,
        matching=conversation_store.ConversationFilter(processor_id=processor_id),
        before=None,
    )
    history = newest_first(processor.version_history)
    return render(
        request,
        "processor.html",
        processor=processor,
        choices=ReplayChoices("processor", processor=processor, versions=history),
        name=processor.name,
        language=processor.language,
        runtime=processor.runtime,
        code=processor.code,
        languages=LANGUAGES,
        runtimes=RUNTIMES,
        recent=recent,
        request_lines=await conversation_store.request_lines(found.db, [c.id for c in recent]),
        versions=history,
        batch=await shown_batch(found, request, processor_id=processor_id),
        batches=await recent_batches(found, processor_id=processor_id),
        max_batch_runs=found.settings.replay_batch_max_runs,
    )


@page_or_sign_in
async def version_page(request: Request) -> Response:
    found = services(request)
    processor_id, version_id = request.path_params["processor_id"], request.path_params["version_id"]
    processor = await store.get_processor(found.db, processor_id)
    if processor is None:
        raise processor_not_found(processor_id)
    stored = await versions.get_version(found.db, version_id)
    if stored is None or stored[0].processor_id != processor_id:
        raise version_not_found(processor_id, version_id)
    version, code = stored
    return render(
        request,
        "processor_version.html",
        processor=processor,
        version=version,
        code=code,
        number=[v.id for v in processor.version_history].index(version.id) + 1,
    )


routes = [
    Route("/ui/processors", processors_page, methods=["GET"]),
    Route("/ui/processors/new", new_processor_page, methods=["GET"]),
    Route("/ui/processors/{processor_id}", processor_page, methods=["GET"]),
    Route("/ui/processors/{processor_id}/versions/{version_id}", version_page, methods=["GET"]),
]
