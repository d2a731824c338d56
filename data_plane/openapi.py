"""GET /openapi.json: the data plane's OpenAPI 3.1 document.

The data plane has two kinds of routes. Runs (`/<endpoint-id>[/<path>]`, any method, and
`/processor/<id>/run|run_with_prelude`) are not Starlette routes: `DataPlaneApp` in `app.py`
sends them straight to their dispatchers, and `RUNS` below describes them, next to nothing else,
so that one look shows what the data plane promises about a run. Everything else (`/status`,
this document) is a Starlette route whose handler carries its own `@operation`.

What a run answers is mostly the guest's own choice: any status, headers and body (`default`).
The statuses the data plane answers itself are listed with the one error body (as JSON); a guest
may answer those statuses too, with its own content (any other media type; a guest's JSON at one
of those statuses is held to the error body by this document, which cannot tell who answered).
Every answered run carries `FH-Conversation-Id`; a request for an unknown endpoint or processor is
not a run and has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute

from data_plane import replay
from shared.openapi import (
    METHODS,
    Answer,
    Body,
    Operation,
    Schema,
    build_document,
    document_route,
    package_version,
    path_parameters,
    ref,
    routes_of,
)

PATH_PARAMETERS: dict[str, Schema] = {
    "endpoint_id": {"description": "the endpoint's id", "schema": {"type": "string"}},
    "path": {
        "description": "the sub-path the module sees as PATH_INFO (it may hold more segments)",
        "schema": {"type": "string"},
    },
    "processor_id": {"description": "the processor's id", "schema": {"type": "string"}},
}
SCHEMAS: dict[str, Schema] = {
    **replay.schemas,
    "DataPlaneStatus": {
        "type": "object",
        "description": "Always 200 while the process serves; more fields may be added.",
        "required": ["status", "service", "plane_id", "redis"],
        "properties": {
            "status": {"const": "ok"},
            "service": {"const": "data-plane"},
            "plane_id": {"type": "string", "description": "FFAAS_PLANE_ID"},
            "redis": {"enum": ["ok", "unavailable"]},
            "endpoints": {"type": "integer", "description": "endpoints this plane serves"},
            "processors": {"type": "integer", "description": "processors this plane serves"},
            "modules_compiled": {"type": "integer"},
            "modules_loaded_from_disk": {"type": "integer"},
            "wasm_js_engine": {
                "type": "string",
                "description": "not loaded, loading, ready or unavailable: <why>",
            },
            "conversation_outbox": {"type": "integer", "description": "records waiting for Redis"},
            "conversation_outbox_adopting": {
                "type": "integer",
                "description": "records still to write from an outbox no worker owns (worker count changed)",
            },
            "conversation_outboxes_adopted": {"type": "integer", "description": "such outboxes drained"},
        },
    },
}
TAGS = [
    {"name": "runs", "description": "Running endpoints and processors; every run is a conversation"},
    {"name": "status", "description": "Health and this document"},
    {"name": "replay", "description": "Replays of recorded runs, asked for by control planes"},
]
DESCRIPTION = (
    "The data plane of FFAAS: runs WebAssembly endpoints and JavaScript/TypeScript processors. "
    "No authentication. Every run's response carries FH-Conversation-Id, the id of its conversation "
    "on the control plane (GET /conversation/{id} there). Errors the data plane answers itself are "
    '`{"code": <status>, "message": ...}`.'
)

CONVERSATION_HEADER: Schema = {
    "description": "The run's conversation id; absent when no run happened (unknown endpoint or processor)",
    "schema": {"type": "string", "format": "uuid"},
}
ANY_BODY = Body(
    {"*/*": {}},
    "Given to the guest as it is (stdin for modules, `request.body` for processors)",
    required=False,
)
WITHOUT_BODY = ("get", "head", "delete", "options", "trace")


def _run(summary: str, name: str, unknown: str) -> dict[str, Operation]:
    """A run route's operation, once per method: a run answers any method."""

    def platform(description: str) -> Answer:
        """A status the data plane answers itself with the error body, and a guest may answer too."""
        return Answer(
            f"{description}; or the guest's own answer with this status",
            {"application/json": ref("Error"), "*/*": {}},
            {"FH-Conversation-Id": CONVERSATION_HEADER},
        )

    responses: dict[int | str, Answer] = {
        "default": Answer(
            "The guest's response: its status, headers and body",
            {"*/*": {}},
            {"FH-Conversation-Id": CONVERSATION_HEADER},
        ),
        404: platform(unknown),
        413: platform("The request body is larger than FFAAS_MAX_REQUEST_BYTES (a run, recorded)"),
        500: platform(
            "The guest failed: trapped, exited non-zero, threw, ran out of memory (FFAAS_MAX_MEMORY_BYTES), "
            "wrote too much (FFAAS_MAX_RESPONSE_BYTES) or answered something that is not HTTP"
        ),
        503: platform("The data plane cannot take the run now (a bounded queue is full; see Retry-After)"),
        504: platform("The run exceeded FFAAS_RUN_TIMEOUT_MS"),
        508: platform("The request went round through FFAAS too many times (FH-Hops)"),
    }
    return {
        method: Operation(
            summary=summary,
            tag="runs",
            responses=responses,
            body=None if method in WITHOUT_BODY else ANY_BODY,
            public=True,
            operation_id=f"{name}_{method}",
        )
        for method in METHODS
    }


RUNS: dict[str, dict[str, Operation]] = {
    "/{endpoint_id}": _run(
        "Run an endpoint", "run_endpoint", "No endpoint with this id, or it has no deploy"
    ),
    "/{endpoint_id}/{path}": _run(
        "Run an endpoint on a sub-path", "run_endpoint_path", "No endpoint with this id, or it has no deploy"
    ),
    "/processor/{processor_id}/run": _run(
        "Run a processor: its code defines main(request)", "run_processor", "No processor with this id"
    ),
    "/processor/{processor_id}/run_with_prelude": _run(
        "Run a processor with the fh prelude: its code defines async main(fh, request)",
        "run_processor_with_prelude",
        "No processor with this id",
    ),
}
"""The run routes, as `DataPlaneApp` (app.py) routes them: any method, straight to a dispatcher."""


def openapi_document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    runs = {
        path: {
            method: described.as_openapi(path_parameters(path, PATH_PARAMETERS), secured=False)
            for method, described in methods.items()
        }
        for path, methods in RUNS.items()
    }
    return build_document(
        title="FFAAS data plane",
        version=package_version(),
        description=DESCRIPTION,
        served=list(routes_of(routes)),
        path_parameters=PATH_PARAMETERS,
        schemas=SCHEMAS,
        tags=TAGS,
        secured=False,
        extra_paths=runs,
    )


routes = [document_route(openapi_document, plane="data plane")]
