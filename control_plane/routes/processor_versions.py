"""Processor versions: read one with its code, and make an earlier one active again (rollback).

- GET /admin/processor/<id>/version/<version-id> -> the version object plus `code` (as saved).
- POST /admin/processor/<id>/rollback, optional body {"version_id": "<uuid>"} -> 200 processor.
  Without a version_id, the version preceding the active one becomes active. The history
  itself never changes. Like a save, the change is published after the SQLite commit and the
  response comes back once every live data plane serves the activated version.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from control_plane.routes.processors import VERSION_SCHEMA, processor_json, processor_not_found, version_json
from control_plane.routes.request_body import read_json
from control_plane.state import services
from control_plane.storage import processor_versions as versions
from control_plane.storage import processors as store
from control_plane.storage.processor_versions import ProcessorVersion
from shared.errors import BadRequest, NotFound
from shared.openapi import Schema, error, json_answer, json_body, nullable, operation, ref

TAG = "processors"
schemas: dict[str, Schema] = {
    "ProcessorVersionWithCode": {
        **VERSION_SCHEMA,
        "required": [*VERSION_SCHEMA["required"], "code"],
        "properties": {
            **VERSION_SCHEMA["properties"],
            "code": {"type": "string", "description": "the code as saved in this version"},
        },
    },
    "ProcessorRollback": {
        "type": ["object", "null"],
        "description": "optional; an empty body or null picks the one before the active one",
        "properties": {
            "version_id": {**nullable({"type": "string"}), "description": "the version to make active"}
        },
    },
}


@operation(
    "Read a version of a processor, with its code",
    tag=TAG,
    responses={
        200: json_answer("The version and the code saved in it", ref("ProcessorVersionWithCode")),
        404: error("No processor with this id, or no such version of it"),
    },
)
async def get_version(request: Request) -> JSONResponse:
    found = services(request)
    processor_id = request.path_params["processor_id"]
    version_id = request.path_params["version_id"]
    stored = await versions.get_version(found.db, version_id)
    if stored is None or stored[0].processor_id != processor_id:
        if await store.get_processor(found.db, processor_id) is None:
            raise processor_not_found(processor_id)
        raise version_not_found(processor_id, version_id)
    version, code = stored
    return JSONResponse({**version_json(version), "code": code})


@operation(
    "Make an earlier version of a processor active again",
    tag=TAG,
    operation_id="rollback_processor",
    description="Without a body (or without `version_id`), the version before the active one becomes "
    "active. The history itself never changes; the answer comes once live data planes run it.",
    body=json_body(ref("ProcessorRollback"), required=False),
    responses={
        200: json_answer("The processor, with its new active version", ref("Processor")),
        400: error(
            "The body is not JSON, not an object, `version_id` is not a string, or there is no earlier "
            "version to roll back to"
        ),
        404: error("No processor with this id, or no version `version_id` of it"),
        413: error("The body is larger than a JSON body may be"),
        503: error(
            "Redis is unavailable (FFAAS_REDIS_URL) or did not answer within FFAAS_REDIS_TIMEOUT_MS, "
            "so the change could not be published (Retry-After)"
        ),
    },
)
async def rollback(request: Request) -> JSONResponse:
    found = services(request)
    processor_id = request.path_params["processor_id"]
    body = await read_json(request)
    if body is not None and not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object or empty")
    version_id = (body or {}).get("version_id")
    if version_id is not None and not isinstance(version_id, str):
        raise BadRequest("version_id must be a string")

    def choose(processor: store.Processor) -> ProcessorVersion:
        if version_id is not None:
            for version in processor.version_history:
                if version.id == version_id:
                    return version
            raise version_not_found(processor.id, version_id)
        return _previous_version(processor)

    processor = await store.activate_version(found.db, processor_id, choose)
    if processor is None:
        raise processor_not_found(processor_id)
    await found.publisher.processors.publish(
        processor_id,
        change=f"rollback of processor {processor_id} to version {processor.active_version_id}",
    )
    return JSONResponse(processor_json(processor))


def version_not_found(processor_id: str, version_id: str) -> NotFound:
    return NotFound(f"version {version_id} not found in processor {processor_id}")


def _previous_version(processor: store.Processor) -> ProcessorVersion:
    ids = [version.id for version in processor.version_history]
    position = ids.index(processor.active_version_id)
    if position == 0:
        raise BadRequest(
            f"active version {processor.active_version_id} is the oldest of processor {processor.id}; "
            "there is no earlier version to roll back to"
        )
    return processor.version_history[position - 1]


routes = [
    Route("/admin/processor/{processor_id}/version/{version_id}", get_version, methods=["GET"]),
    Route("/admin/processor/{processor_id}/rollback", rollback, methods=["POST"]),
]
