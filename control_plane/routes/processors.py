"""Processors (the fh-http seed's RequestProcessor admin API): create, list, get, replace, delete.

Shapes (the seed's, plus the version history):
- processor: {id, name, language, runtime, code, active_version_id, version_history};
  `language` is "js" or "ts" (input may also say "javascript" or "typescript"), `runtime`
  "v8" or "wasm", `code` exactly as saved; `version_history` lists version objects
  {id, processor_id, name, language, runtime, code_hash, created_at} oldest first, one per
  create or PUT (`routes.processor_versions` reads one, with its code, and rolls back).
- POST /admin/processor {name, language, runtime, code} -> 201 processor (id: a new uuid4).
- GET /admin/processor -> [processor, ...] oldest first; GET /admin/processor/<id> -> processor.
- PUT /admin/processor/<id> {name, language, runtime, code}: every field, -> 200 processor.
- DELETE /admin/processor/<id> -> 204.
An unknown id is 404 "processor <id> not found". A save is validated and transpiled
(`transpile.py`) before anything is written: a refused save stores nothing and publishes
nothing. Accepted saves and deletions are published after the commit
(`Publisher.processors`), and the response comes back once live data planes serve them.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from control_plane.routes.request_body import read_json_object
from control_plane.settings import Settings
from control_plane.state import services
from control_plane.storage import processors as store
from control_plane.storage.processor_versions import ProcessorVersion
from control_plane.transpile import transpile
from shared.content_hash import content_hash
from shared.errors import BadRequest, NotFound, PayloadTooLarge
from shared.openapi import (
    NOT_BLANK_PATTERN,
    TIMESTAMP,
    UUID,
    Schema,
    error,
    json_answer,
    json_body,
    no_content,
    operation,
    ref,
)

FIELDS = ("name", "language", "runtime", "code")
LANGUAGES = {"js": "js", "ts": "ts", "javascript": "js", "typescript": "ts"}
RUNTIMES = ("v8", "wasm")
MAX_NAME_CHARS = 200
# Room for JSON escaping of the code (up to 6 bytes per character) and the other fields.
JSON_OVERHEAD_FACTOR = 6
JSON_OVERHEAD_BYTES = 64 * 1024
TAG = "processors"

VERSION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "processor_id", "name", "language", "runtime", "code_hash", "created_at"],
    "properties": {
        "id": UUID,
        "processor_id": UUID,
        "name": {"type": "string"},
        "language": {"enum": ["js", "ts"]},
        "runtime": {"enum": list(RUNTIMES)},
        "code_hash": {"type": "string", "description": "the content hash of the runnable JavaScript"},
        "created_at": TIMESTAMP,
    },
    "additionalProperties": False,
}
schemas: dict[str, Schema] = {
    "Processor": {
        "type": "object",
        "required": ["id", "name", "language", "runtime", "code", "active_version_id", "version_history"],
        "properties": {
            "id": UUID,
            "name": {"type": "string"},
            "language": {"enum": ["js", "ts"]},
            "runtime": {"enum": list(RUNTIMES)},
            "code": {"type": "string", "description": "exactly as saved"},
            "active_version_id": {**UUID, "description": "the version data planes run"},
            "version_history": {
                "type": "array",
                "items": ref("ProcessorVersion"),
                "description": "one version per create or PUT, oldest first",
            },
        },
        "additionalProperties": False,
    },
    "ProcessorVersion": VERSION_SCHEMA,
    "ProcessorFields": {
        "type": "object",
        "description": "Every field is required. The code is checked (js) or transpiled (ts) by esbuild "
        "when saved.",
        "required": list(FIELDS),
        "properties": {
            "id": {"description": "optional: ignored on POST (a new id is made); on PUT, the path's id"},
            "name": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_NAME_CHARS,
                "pattern": NOT_BLANK_PATTERN,
            },
            "language": {"enum": list(LANGUAGES)},
            "runtime": {"enum": list(RUNTIMES)},
            "code": {"type": "string", "minLength": 1, "pattern": NOT_BLANK_PATTERN},
        },
        "examples": [
            {
                "name": "relay",
                "language": "ts",
                "runtime": "v8",
                "code": "async function main(fh: any, request: any) { fh.log(request.method); "
                "return {code: 200, body: {seen: request.body}}; }",
            }
        ],
    },
}
NOT_FOUND = error("No processor with this id")
INVALID = (
    "A field missing or of the wrong type, an unknown language or runtime, an empty name or code, "
    "or code that does not compile (esbuild's message with line:column)"
)
TOO_LARGE = error("The code is larger than FFAAS_MAX_PROCESSOR_CODE_BYTES")
CANNOT_SAVE = error(
    "esbuild is missing or failed (FFAAS_ESBUILD_PATH, FFAAS_TRANSPILE_TIMEOUT_MS), or Redis is "
    "unavailable (FFAAS_REDIS_URL) or did not answer within FFAAS_REDIS_TIMEOUT_MS, so the change could "
    "not be published (Retry-After)"
)
PROCESSOR_LINKS = {
    "GetProcessor": {"operationId": "get_processor", "parameters": {"processor_id": "$response.body#/id"}},
    "ReplaceProcessor": {
        "operationId": "replace_processor",
        "parameters": {"processor_id": "$response.body#/id"},
    },
    "DeleteProcessor": {
        "operationId": "delete_processor",
        "parameters": {"processor_id": "$response.body#/id"},
    },
}


def version_json(version: ProcessorVersion) -> dict[str, Any]:
    return {
        "id": version.id,
        "processor_id": version.processor_id,
        "name": version.name,
        "language": version.language,
        "runtime": version.runtime,
        "code_hash": version.code_hash,
        "created_at": version.created_at,
    }


def processor_json(processor: store.Processor) -> dict[str, Any]:
    return {
        "id": processor.id,
        "name": processor.name,
        "language": processor.language,
        "runtime": processor.runtime,
        "code": processor.code,
        "active_version_id": processor.active_version_id,
        "version_history": [version_json(version) for version in processor.version_history],
    }


def processor_not_found(processor_id: str) -> NotFound:
    return NotFound(f"processor {processor_id} not found")


@operation(
    "Create a processor",
    tag=TAG,
    body=json_body(ref("ProcessorFields")),
    responses={
        201: json_answer("The new processor", ref("Processor"), links=PROCESSOR_LINKS),
        400: error(INVALID),
        413: TOO_LARGE,
        503: CANNOT_SAVE,
    },
)
async def create_processor(request: Request) -> JSONResponse:
    found = services(request)
    fields = validate_fields(
        await read_processor_body(request, found.settings), found.settings, replacing=False
    )
    runnable = await runnable_code(fields, found.settings)
    processor = await store.create_processor(found.db, fields, runnable)
    await found.publisher.processors.publish(processor.id, change=f"processor {processor.id}", code=runnable)
    return JSONResponse(processor_json(processor), status_code=201)


@operation(
    "List processors",
    tag=TAG,
    responses={
        200: json_answer("Every processor, oldest first", {"type": "array", "items": ref("Processor")})
    },
)
async def list_processors(request: Request) -> JSONResponse:
    processors = await store.list_processors(services(request).db)
    return JSONResponse([processor_json(processor) for processor in processors])


@operation(
    "Read a processor",
    tag=TAG,
    responses={200: json_answer("The processor", ref("Processor")), 404: NOT_FOUND},
)
async def get_processor(request: Request) -> JSONResponse:
    processor_id = request.path_params["processor_id"]
    processor = await store.get_processor(services(request).db, processor_id)
    if processor is None:
        raise processor_not_found(processor_id)
    return JSONResponse(processor_json(processor))


@operation(
    "Replace a processor",
    tag=TAG,
    description="PUT replaces the whole processor: send name, language, runtime and code.",
    body=json_body(ref("ProcessorFields")),
    responses={
        200: json_answer("The processor as saved", ref("Processor")),
        400: error(INVALID + "; or an `id` in the body that differs from the path's"),
        404: NOT_FOUND,
        413: TOO_LARGE,
        503: CANNOT_SAVE,
    },
)
async def replace_processor(request: Request) -> JSONResponse:
    found = services(request)
    processor_id = request.path_params["processor_id"]
    if await store.get_processor(found.db, processor_id) is None:
        raise processor_not_found(processor_id)
    body = await read_processor_body(request, found.settings)
    if "id" in body and body["id"] != processor_id:
        raise BadRequest(f"id in the body ({json.dumps(body['id'])}) differs from the id in the path")
    fields = validate_fields(body, found.settings, replacing=True)
    runnable = await runnable_code(fields, found.settings)
    processor = await store.replace_processor(found.db, processor_id, fields, runnable)
    if processor is None:  # deleted while the code was being transpiled
        raise processor_not_found(processor_id)
    await found.publisher.processors.publish(
        processor_id, change=f"update of processor {processor_id}", code=runnable
    )
    return JSONResponse(processor_json(processor))


@operation(
    "Delete a processor",
    tag=TAG,
    responses={
        204: no_content("Deleted"),
        404: NOT_FOUND,
        503: error(
            "Redis is unavailable (FFAAS_REDIS_URL) or did not answer within FFAAS_REDIS_TIMEOUT_MS, "
            "so the deletion could not be published (Retry-After)"
        ),
    },
)
async def delete_processor(request: Request) -> Response:
    found = services(request)
    processor_id = request.path_params["processor_id"]
    if not await store.delete_processor(found.db, processor_id):
        raise processor_not_found(processor_id)
    await found.publisher.processors.publish(processor_id, change=f"deletion of processor {processor_id}")
    return Response(status_code=204)


def validate_fields(body: dict[str, object], settings: Settings, *, replacing: bool) -> store.ProcessorFields:
    """Every field present, of the right type and value; language normalised to "js"/"ts"."""
    missing = [field for field in FIELDS if body.get(field) is None]
    if missing:
        hint = (
            " (PUT replaces the whole processor: send name, language, runtime and code)" if replacing else ""
        )
        raise BadRequest(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required{hint}")
    name, language, runtime, code = (_text(body, field) for field in FIELDS)
    if not name.strip():
        raise BadRequest("name must not be empty")
    if len(name) > MAX_NAME_CHARS:
        raise BadRequest(f"name must be at most {MAX_NAME_CHARS} characters, got {len(name)}")
    if language not in LANGUAGES:
        raise BadRequest(
            f"language must be one of js, ts (or javascript, typescript), got {json.dumps(language)}"
        )
    if runtime not in RUNTIMES:
        raise BadRequest(f"runtime must be one of {', '.join(RUNTIMES)}, got {json.dumps(runtime)}")
    if not code.strip():
        raise BadRequest("code must not be empty")
    limit = settings.max_processor_code_bytes
    size = len(code.encode("utf-8"))
    if size > limit:
        raise PayloadTooLarge(
            f"code is {size} bytes, larger than {limit} bytes (FFAAS_MAX_PROCESSOR_CODE_BYTES)"
        )
    return store.ProcessorFields(name=name, language=LANGUAGES[language], runtime=runtime, code=code)


async def read_processor_body(request: Request, settings: Settings) -> dict[str, object]:
    code_limit = settings.max_processor_code_bytes
    limit = code_limit * JSON_OVERHEAD_FACTOR + JSON_OVERHEAD_BYTES
    return await read_json_object(
        request,
        limit=limit,
        too_large=f"request body is larger than {limit} bytes; "
        f"code may be at most {code_limit} bytes (FFAAS_MAX_PROCESSOR_CODE_BYTES)",
    )


def _text(body: dict[str, object], field: str) -> str:
    value = body[field]
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string, got {_json_type(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, sent as a \ud8xx escape
        raise BadRequest(f"{field} is not valid Unicode text: {exc.reason} at character {exc.start}") from exc
    return value


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "an array" if isinstance(value, list) else "an object"


async def runnable_code(fields: store.ProcessorFields, settings: Settings) -> store.RunnableCode:
    """The JavaScript data planes run for `fields`: checked, and transpiled when TypeScript."""
    js = await transpile(
        fields.code, fields.language, esbuild=settings.esbuild_path, timeout_ms=settings.transpile_timeout_ms
    )
    return store.RunnableCode(code_hash=content_hash(js.encode("utf-8")), js=js)


routes = [
    Route("/admin/processor", create_processor, methods=["POST"]),
    Route("/admin/processor", list_processors, methods=["GET"]),
    Route("/admin/processor/{processor_id}", get_processor, methods=["GET"]),
    Route("/admin/processor/{processor_id}", replace_processor, methods=["PUT"]),
    Route("/admin/processor/{processor_id}", delete_processor, methods=["DELETE"]),
]
