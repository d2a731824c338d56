"""Endpoints: create, list, get, delete, and their environment variables.

Shapes (the FFAAS seed's, exactly):
- endpoint: {id, name, url, active_deploy_id, deploy_history, created_at}; `url` is the
  public data-plane URL + "/" + id; `active_deploy_id` is the nil UUID before the first
  deploy; `deploy_history` lists deploy objects oldest first.
- deploy: {id, endpoint_id, hash, created_at}.
- env: {"NAME": "value", ...}.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from control_plane.endpoint_env import validate_env
from control_plane.routes.request_body import read_json, read_json_object
from control_plane.state import services
from control_plane.storage import endpoints as store
from shared.errors import BadRequest, NotFound

NIL_UUID = "00000000-0000-0000-0000-000000000000"
MAX_NAME_CHARS = 200


def deploy_json(deploy: store.Deploy) -> dict[str, Any]:
    return {
        "id": deploy.id,
        "endpoint_id": deploy.endpoint_id,
        "hash": deploy.module_hash,
        "created_at": deploy.created_at,
    }


def endpoint_json(endpoint: store.Endpoint, public_url: str) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "name": endpoint.name,
        "url": f"{public_url}/{endpoint.id}",
        "active_deploy_id": endpoint.active_deploy_id or NIL_UUID,
        "deploy_history": [deploy_json(deploy) for deploy in endpoint.deploy_history],
        "created_at": endpoint.created_at,
    }


def endpoint_not_found(endpoint_id: str) -> NotFound:
    return NotFound(f"endpoint {endpoint_id} not found")


async def create_endpoint(request: Request) -> JSONResponse:
    body = await read_json_object(request)
    name = body.get("name")
    if name is None:
        raise BadRequest("name is required")
    if not isinstance(name, str):
        raise BadRequest("name must be a string")
    if not name.strip():
        raise BadRequest("name must not be empty")
    if len(name) > MAX_NAME_CHARS:
        raise BadRequest(f"name must be at most {MAX_NAME_CHARS} characters, got {len(name)}")
    found = services(request)
    endpoint = await store.create_endpoint(found.db, name)
    return JSONResponse(endpoint_json(endpoint, found.settings.public_url), status_code=201)


async def list_endpoints(request: Request) -> JSONResponse:
    found = services(request)
    endpoints = await store.list_endpoints(found.db)
    return JSONResponse([endpoint_json(endpoint, found.settings.public_url) for endpoint in endpoints])


async def get_endpoint(request: Request) -> JSONResponse:
    found = services(request)
    endpoint_id = request.path_params["endpoint_id"]
    endpoint = await store.get_endpoint(found.db, endpoint_id)
    if endpoint is None:
        raise endpoint_not_found(endpoint_id)
    return JSONResponse(endpoint_json(endpoint, found.settings.public_url))


async def delete_endpoint(request: Request) -> Response:
    found = services(request)
    endpoint_id = request.path_params["endpoint_id"]
    if not await store.delete_endpoint(found.db, endpoint_id):
        raise endpoint_not_found(endpoint_id)
    await found.publisher.publish_endpoint(endpoint_id, change=f"deletion of endpoint {endpoint_id}")
    return Response(status_code=204)


async def get_env(request: Request) -> JSONResponse:
    endpoint_id = request.path_params["endpoint_id"]
    env = await store.get_env(services(request).db, endpoint_id)
    if env is None:
        raise endpoint_not_found(endpoint_id)
    return JSONResponse(env)


async def put_env(request: Request) -> JSONResponse:
    found = services(request)
    endpoint_id = request.path_params["endpoint_id"]
    if await store.get_endpoint(found.db, endpoint_id) is None:
        raise endpoint_not_found(endpoint_id)
    env = validate_env(await read_json(request))
    if not await store.replace_env(found.db, endpoint_id, env):
        raise endpoint_not_found(endpoint_id)
    await found.publisher.publish_endpoint(endpoint_id, change=f"environment of endpoint {endpoint_id}")
    return JSONResponse(env)


routes = [
    Route("/endpoint", create_endpoint, methods=["POST"]),
    Route("/endpoint", list_endpoints, methods=["GET"]),
    Route("/endpoint/{endpoint_id}", get_endpoint, methods=["GET"]),
    Route("/endpoint/{endpoint_id}", delete_endpoint, methods=["DELETE"]),
    Route("/endpoint/{endpoint_id}/env", get_env, methods=["GET"]),
    Route("/endpoint/{endpoint_id}/env", put_env, methods=["PUT"]),
]
