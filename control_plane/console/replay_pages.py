"""Console pages of replays: a replay beside its original, and a batch's report.

- GET /ui/conversations/<replay-id>/compare: the replay and the run it replays side by side,
  the differences marked (`comparison.py`). The conversation page's "Replay against…" form
  (`frontend/replay.js`) posts to `POST /conversation/<id>/replay` and shows this page's
  `#comparison` in place; batch reports link each pair here.
- GET /ui/replays/<batch-id>: a batch replay's report (`GET /replay/<id>` as a page): while it
  runs, its progress (`frontend/batches.js` polls the API and swaps in the finished report);
  then how many runs were replayed, how many differ and in what, each pair with its links, and
  a button to activate the tested deploy or version. Endpoint and processor pages show the
  same report in place (`?batch=<id>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from control_plane.console.comparison import compare, what_ran
from control_plane.console.conversation_pages import names
from control_plane.console.pages import page_or_sign_in, ran_of, render
from control_plane.routes.conversations import find_conversation
from control_plane.state import Services, services
from control_plane.storage import conversations as conversation_store
from control_plane.storage import endpoints as endpoint_store
from control_plane.storage import processors as processor_store
from shared.errors import BadRequest, NotFound


@dataclass(frozen=True)
class BatchView:
    """A batch report and what its page shows beside it."""

    report: dict[str, Any]
    kind: str
    """"endpoint" or "processor"."""
    subject_id: str
    subject_name: str
    target_label: str
    target_id: str | None
    """The deploy or version tested; None for a draft."""
    target_active: bool
    subject_exists: bool
    request_lines: dict[str, tuple[str, str]]

    @property
    def running(self) -> bool:
        return self.report["state"] == "running"


@page_or_sign_in
async def comparison_page(request: Request) -> Response:
    found = services(request)
    replay = await find_conversation(found, request.path_params["conversation_id"])
    conversation = replay[0]
    if not conversation.replay_of:
        raise BadRequest(
            f"conversation {conversation.id} is not a replay: there is nothing to compare it with"
        )
    try:
        original = await find_conversation(found, conversation.replay_of)
    except NotFound as exc:
        raise NotFound(
            f"conversation {conversation.id} replays {conversation.replay_of}, which is no longer stored"
        ) from exc
    named = await names(found.db)
    return render(
        request,
        "compare.html",
        comparison=compare(original, replay),
        ran=ran_of(conversation, named),
        what_ran=what_ran,
    )


@page_or_sign_in
async def batch_page(request: Request) -> Response:
    found = services(request)
    view = await batch_view(found, request.path_params["batch_id"])
    return render(request, "replay_batch.html", batch=view)


async def batch_view(found: Services, batch_id: str) -> BatchView:
    report = await found.replay_batches.report(batch_id)
    if report is None:
        raise NotFound(f"replay batch {batch_id} not found")
    target = report["target"]
    originals = [run["original"] for run in report["runs"]]
    lines = await conversation_store.request_lines(found.db, originals)
    if report.get("endpoint_id"):
        endpoint = await endpoint_store.get_endpoint(found.db, report["endpoint_id"])
        deploy_id = target.get("deploy_id")
        return BatchView(
            report,
            "endpoint",
            report["endpoint_id"],
            endpoint.name if endpoint else report["endpoint_id"],
            f"deploy {str(deploy_id)[:8]}",
            deploy_id,
            endpoint is not None and endpoint.active_deploy_id == deploy_id,
            endpoint is not None,
            lines,
        )
    processor = await processor_store.get_processor(found.db, report["processor_id"])
    version_id = target.get("processor_version_id")
    if version_id:
        label = f"version {version_id[:8]}"
    else:
        draft = target.get("draft") or {}
        language = "TypeScript" if draft.get("language") == "ts" else "JavaScript"
        label = f"a draft ({language}, {draft.get('runtime')}, code {str(draft.get('code_hash'))[:12]})"
    return BatchView(
        report,
        "processor",
        report["processor_id"],
        processor.name if processor else report["processor_id"],
        label,
        version_id,
        processor is not None and processor.active_version_id == version_id,
        processor is not None,
        lines,
    )


async def shown_batch(found: Services, request: Request, **subject: str) -> BatchView | None:
    """The batch named by `?batch=` on an endpoint or processor page, if it is one of `subject`'s."""
    batch_id = request.query_params.get("batch")
    if not batch_id:
        return None
    view = await batch_view(found, batch_id)
    for key, value in subject.items():
        if view.report.get(key) != value:
            raise NotFound(f"replay batch {batch_id} is not one of this {key.removesuffix('_id')}'s")
    return view


routes = [
    Route("/ui/conversations/{conversation_id}/compare", comparison_page, methods=["GET"]),
    Route("/ui/replays/{batch_id}", batch_page, methods=["GET"]),
]
