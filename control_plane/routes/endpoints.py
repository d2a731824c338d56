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

from control_plane.endpoint_env import MAX_VALUE_CHARS, MAX_VARIABLES, validate_env
from control_plane.routes.request_body import read_json, read_json_object
from control_plane.state import services
from control_plane.storage import endpoints as store
from shared.errors import BadRequest, NotFound
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

NIL_UUID = "00000000-0000-0000-0000-000000000000"
MAX_NAME_CHARS = 200
TAG = "endpoints"

DEPLOY_SCHEMA = {
    "type": "object",
    "required": ["id", "endpoint_id", "hash", "created_at"],
    "properties": {
        "id": UUID,
        "endpoint_id": UUID,
        "hash": {"type": "string", "pattern": "^[0-9a-f]{32}$", "description": "the module's content hash"},
        "created_at": TIMESTAMP,
    },
    "additionalProperties": False,
}
schemas: dict[str, Schema] = {
    "Endpoint": {
        "type": "object",
        "required": ["id", "name", "url", "active_deploy_id", "deploy_history", "created_at"],
        "properties": {
            "id": UUID,
            "name": {"type": "string"},
            "url": {"type": "string", "description": "FFAAS_PUBLIC_URL + / + id: where the endpoint runs"},
            "active_deploy_id": {**UUID, "description": "the nil UUID before the first deploy"},
            "deploy_history": {"type": "array", "items": ref("Deploy"), "description": "oldest first"},
            "created_at": TIMESTAMP,
        },
        "additionalProperties": False,
    },
    "Deploy": DEPLOY_SCHEMA,
    "NewEndpoint": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_NAME_CHARS,
                "pattern": NOT_BLANK_PATTERN,
            },
        },
        "examples": [{"name": "echo"}],
    },
    "Env": {
        "type": "object",
        "description": "Environment variable names to values. Refused names: the CGI variables, HTTP_*, X_*.",
        "maxProperties": MAX_VARIABLES,
        "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        "additionalProperties": {"type": "string", "maxLength": MAX_VALUE_CHARS},
        "examples": [{"GREETING": "bonjour"}],
    },
}
ENDPOINT_LINKS = {
    "GetEndpoint": {"operationId": "get_endpoint", "parameters": {"endpoint_id": "$response.body#/id"}},
    "DeployToEndpoint": {"operationId": "create_deploy", "parameters": {"endpoint_id": "$response.body#/id"}},
    "DeleteEndpoint": {"operationId": "delete_endpoint", "parameters": {"endpoint_id": "$response.body#/id"}},
}
NOT_FOUND = error("No endpoint with this id")


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


@operation(
    "Create an endpoint",
    tag=TAG,
    body=json_body(ref("NewEndpoint")),
    responses={
        201: json_answer("The new endpoint, with no deploy yet", ref("Endpoint"), links=ENDPOINT_LINKS),
        400: error(
            f"The body is not a JSON object with a non-empty string `name` of at most {MAX_NAME_CHARS} "
            "characters"
        ),
        413: error("The body is larger than a JSON body may be"),
    },
)
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


@operation(
    "List endpoints",
    tag=TAG,
    responses={200: json_answer("Every endpoint, oldest first", {"type": "array", "items": ref("Endpoint")})},
)
async def list_endpoints(request: Request) -> JSONResponse:
    found = services(request)
    endpoints = await store.list_endpoints(found.db)
    return JSONResponse([endpoint_json(endpoint, found.settings.public_url) for endpoint in endpoints])


@operation(
    "Read an endpoint",
    tag=TAG,
    responses={200: json_answer("The endpoint and its deploy history", ref("Endpoint")), 404: NOT_FOUND},
)
async def get_endpoint(request: Request) -> JSONResponse:
    found = services(request)
    endpoint_id = request.path_params["endpoint_id"]
    endpoint = await store.get_endpoint(found.db, endpoint_id)
    if endpoint is None:
        raise endpoint_not_found(endpoint_id)
    return JSONResponse(endpoint_json(endpoint, found.settings.public_url))


@operation(
    "Delete an endpoint",
    tag=TAG,
    description="Its deploys go with it; its URL answers 404 once the data planes have the change. "
    "Conversations of its runs stay.",
    responses={
        204: no_content("Deleted"),
        404: NOT_FOUND,
        503: error(
            "Redis is unavailable (FFAAS_REDIS_URL) or did not answer within FFAAS_REDIS_TIMEOUT_MS, "
            "so the deletion could not be published (Retry-After)"
        ),
    },
)
async def delete_endpoint(request: Request) -> Response:
    found = services(request)
    endpoint_id = request.path_params["endpoint_id"]
    if not await store.delete_endpoint(found.db, endpoint_id):
        raise endpoint_not_found(endpoint_id)
    await found.publisher.publish_endpoint(endpoint_id, change=f"deletion of endpoint {endpoint_id}")
    return Response(status_code=204)


@operation(
    "Read an endpoint's environment variables",
    tag=TAG,
    responses={200: json_answer("The variables", ref("Env")), 404: NOT_FOUND},
)
async def get_env(request: Request) -> JSONResponse:
    endpoint_id = request.path_params["endpoint_id"]
    env = await store.get_env(services(request).db, endpoint_id)
    if env is None:
        raise endpoint_not_found(endpoint_id)
    return JSONResponse(env)


@operation(
    "Replace an endpoint's environment variables",
    tag=TAG,
    description="The module sees them next to the CGI variables from the next run on.",
    body=json_body(ref("Env")),
    responses={
        200: json_answer("The variables now set", ref("Env")),
        400: error(
            "Not a JSON object of names to strings, a name that is invalid or reserved (CGI variables, "
            f"HTTP_*, X_*), more than {MAX_VARIABLES} variables, or a value over {MAX_VALUE_CHARS} characters"
        ),
        404: NOT_FOUND,
        413: error("The body is larger than a JSON body may be"),
        503: error(
            "Redis is unavailable (FFAAS_REDIS_URL) or did not answer within FFAAS_REDIS_TIMEOUT_MS, "
            "so the change could not be published (Retry-After)"
        ),
    },
)
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
