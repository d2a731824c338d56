"""Deploys: upload a module to an endpoint (it becomes active), and roll back to an older one.

- POST /endpoint/<id>/deploy[?activate=false], body = the wasm bytes (any content type) -> 201
  deploy object. Refused uploads (too large: 413; empty or invalid: 400) store nothing,
  anywhere. With `activate=false` the deploy joins the history and its bytes go to Redis (so
  it can be replayed against, or activated later by a rollback to it), but the active deploy
  and the data planes' routes stay as they were.
- POST /endpoint/<id>/rollback, optional body {"deploy_id": "<uuid>"} -> 200 endpoint object.
  Without a deploy_id, the deploy preceding the active one in the history becomes active.
  The history itself never changes.
Both publish the endpoint after the SQLite commit; the response comes back once every
live data plane serves the change (or the ack timeout passed).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from control_plane.module_validation import validate_module
from control_plane.routes.endpoints import deploy_json, endpoint_json, endpoint_not_found
from control_plane.routes.request_body import read_json
from control_plane.state import services
from control_plane.storage import endpoints as store
from shared.content_hash import content_hash
from shared.errors import BadRequest, NotFound
from shared.openapi import Body, Schema, error, json_answer, json_body, nullable, operation, query, ref
from shared.request_body import read_capped_body

TAG = "endpoints"
schemas: dict[str, Schema] = {
    "Rollback": {
        "type": ["object", "null"],
        "description": "optional; an empty body or null picks the one before the active one",
        "properties": {
            "deploy_id": {**nullable({"type": "string"}), "description": "the deploy to make active"}
        },
    },
}


@operation(
    "Deploy a WebAssembly module to an endpoint",
    tag=TAG,
    description="The body is the module's bytes (any content type). It is validated without running "
    "it, stored, and becomes the endpoint's active deploy; the answer comes once every live data plane "
    "serves it (or after FFAAS_DEPLOY_ACK_TIMEOUT_MS). With `activate=false` it is only stored (and "
    "its bytes put where data planes find them), for a replay against it; the active deploy stays.",
    parameters=[query("activate", {"enum": ["true", "false"]}, "make it the active deploy (default true)")],
    body=Body(
        {"application/octet-stream": {"type": "string", "contentMediaType": "application/octet-stream"}},
        "A WASI preview1 command module exporting `_start` and `memory`",
    ),
    responses={
        201: json_answer("The deploy, now active (unless activate=false)", ref("Deploy")),
        400: error(
            "`activate` is neither true nor false, an empty body, or not a module the guest contract "
            "can run: not wasm, a component, no `_start`, "
            "no exported `memory`, or imports from outside wasi_snapshot_preview1"
        ),
        404: error("No endpoint with this id"),
        413: error("The module is larger than FFAAS_MAX_MODULE_BYTES"),
        503: error(
            "Redis is unavailable (FFAAS_REDIS_URL) or did not answer within FFAAS_REDIS_TIMEOUT_MS, "
            "so the deploy could not be published (Retry-After)"
        ),
    },
)
async def create_deploy(request: Request) -> JSONResponse:
    found = services(request)
    endpoint_id = request.path_params["endpoint_id"]
    if await store.get_endpoint(found.db, endpoint_id) is None:
        raise endpoint_not_found(endpoint_id)
    activate = _activate(request)
    limit = found.settings.max_module_bytes
    data = await read_capped_body(
        request, limit, f"module is larger than {limit} bytes (FFAAS_MAX_MODULE_BYTES)"
    )
    if not data:
        raise BadRequest("request body is empty; send the WebAssembly module's bytes")
    await asyncio.to_thread(validate_module, data)
    module_hash = content_hash(data)
    deploy = await store.add_deploy(found.db, endpoint_id, module_hash, data, activate=activate)
    if deploy is None:  # deleted while the upload was being validated
        raise endpoint_not_found(endpoint_id)
    if activate:
        await found.publisher.publish_endpoint(
            endpoint_id, change=f"deploy {deploy.id}", module=(module_hash, data)
        )
    else:
        await found.publisher.publish_module(module_hash, data, change=f"deploy {deploy.id}")
    return JSONResponse(deploy_json(deploy), status_code=201)


def _activate(request: Request) -> bool:
    raw = request.query_params.get("activate", "true")
    if raw not in ("true", "false"):
        raise BadRequest(f"activate must be true or false, got {raw!r}")
    return raw == "true"


@operation(
    "Make an older deploy active again",
    tag=TAG,
    operation_id="rollback_endpoint",
    description="Without a body (or without `deploy_id`), the deploy before the active one in the "
    "history becomes active. The history itself never changes.",
    body=json_body(ref("Rollback"), required=False),
    responses={
        200: json_answer("The endpoint, with its new active deploy", ref("Endpoint")),
        400: error(
            "The body is not JSON, not an object, `deploy_id` is not a string, or there is no earlier "
            "deploy to roll back to"
        ),
        404: error("No endpoint with this id, or no deploy `deploy_id` in its history"),
        413: error("The body is larger than a JSON body may be"),
        503: error(
            "Redis is unavailable (FFAAS_REDIS_URL) or did not answer within FFAAS_REDIS_TIMEOUT_MS, "
            "so the change could not be published (Retry-After)"
        ),
    },
)
async def rollback(request: Request) -> JSONResponse:
    found = services(request)
    endpoint_id = request.path_params["endpoint_id"]
    body = await read_json(request)
    if body is not None and not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object or empty")
    deploy_id = (body or {}).get("deploy_id")
    if deploy_id is not None and not isinstance(deploy_id, str):
        raise BadRequest("deploy_id must be a string")

    def choose(endpoint: store.Endpoint) -> store.Deploy:
        if deploy_id is not None:
            return _named_deploy(endpoint, deploy_id)
        return _previous_deploy(endpoint)

    endpoint = await store.activate_deploy(found.db, endpoint_id, choose)
    if endpoint is None:
        raise endpoint_not_found(endpoint_id)
    await found.publisher.publish_endpoint(
        endpoint_id, change=f"rollback of endpoint {endpoint_id} to deploy {endpoint.active_deploy_id}"
    )
    return JSONResponse(endpoint_json(endpoint, found.settings.public_url))


def _named_deploy(endpoint: store.Endpoint, deploy_id: str) -> store.Deploy:
    for deploy in endpoint.deploy_history:
        if deploy.id == deploy_id:
            return deploy
    raise NotFound(f"deploy {deploy_id} not found in endpoint {endpoint.id}")


def _previous_deploy(endpoint: store.Endpoint) -> store.Deploy:
    ids = [deploy.id for deploy in endpoint.deploy_history]
    if endpoint.active_deploy_id is None:
        raise BadRequest(f"endpoint {endpoint.id} has no deploy to roll back from")
    position = ids.index(endpoint.active_deploy_id)
    if position == 0:
        raise BadRequest(
            f"active deploy {endpoint.active_deploy_id} is the oldest of endpoint {endpoint.id}; "
            "there is no earlier deploy to roll back to"
        )
    return endpoint.deploy_history[position - 1]


routes = [
    Route("/endpoint/{endpoint_id}/deploy", create_deploy, methods=["POST"]),
    Route("/endpoint/{endpoint_id}/rollback", rollback, methods=["POST"]),
]
