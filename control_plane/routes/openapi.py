"""GET /openapi.json: the control plane's OpenAPI 3.1 document, built from the app's own routes.

Each route's description sits on its handler (`@operation` in the modules of `routes/`, with the
schemas of what it answers); this module only adds what belongs to the whole document: the path
parameters, the schemas collected from the route modules, and the paths kept out of the JSON API
(`NOT_JSON_API`, HTML pages). Readable without the admin token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute

from control_plane.routes import (
    conversations,
    deploys,
    endpoints,
    processor_versions,
    processors,
    replay,
    status,
)
from shared.openapi import (
    Schema,
    build_document,
    document_route,
    error,
    is_excluded,
    package_version,
    routes_of,
)

NOT_JSON_API: tuple[str, ...] = ("/", "/ui")
"""Paths of HTML pages (the console; `/` leads to it), not of the JSON API: left out of the document, with
everything under them (`shared.openapi.is_excluded`). Add a page here, and nothing else."""

PATH_PARAMETERS: dict[str, Schema] = {
    "endpoint_id": {"description": "the endpoint's id", "schema": {"type": "string"}},
    "processor_id": {"description": "the processor's id", "schema": {"type": "string"}},
    "version_id": {"description": "the id of a version of the processor", "schema": {"type": "string"}},
    "batch_id": {"description": "the id of a batch replay", "schema": {"type": "string"}},
    "conversation_id": {
        "description": "the conversation's id (FH-Conversation-Id)",
        "schema": {"type": "string"},
    },
}
SCHEMAS: dict[str, Schema] = {
    **status.schemas,
    **endpoints.schemas,
    **deploys.schemas,
    **processors.schemas,
    **processor_versions.schemas,
    **conversations.schemas,
    **replay.schemas,
}
TAGS = [
    {"name": "status", "description": "Health and this document"},
    {"name": "endpoints", "description": "WebAssembly endpoints, their deploys and environment"},
    {"name": "processors", "description": "JavaScript and TypeScript processors"},
    {"name": "conversations", "description": "The record of every run"},
    {"name": "replay", "description": "Recorded runs replayed against another deploy, version or draft"},
]
DESCRIPTION = (
    'The admin API of FFAAS. JSON everywhere; every error is `{"code": <status>, "message": ...}`. '
    "With FFAAS_ADMIN_TOKEN set, every operation but the public ones needs "
    "`Authorization: Bearer <token>`. Runs happen on the data plane, which serves its own document."
)


WRITE_METHODS = ("post", "put", "delete", "patch")
CROSS_ORIGIN = error(
    "A browser's write from another origin (an `Origin` that is not this control plane's, or "
    "`Sec-Fetch-Site` other than same-origin or none), refused before anything else"
)
NOT_JSON = error("The body is not sent with `Content-Type: application/json`")


def openapi_document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    document = build_document(
        title="FFAAS control plane",
        version=package_version(),
        description=DESCRIPTION,
        served=[route for route in routes_of(routes) if not is_excluded(route.path, NOT_JSON_API)],
        path_parameters=PATH_PARAMETERS,
        schemas=SCHEMAS,
        tags=TAGS,
        secured=True,
    )
    # What the app answers around every route (`cross_site.py`, `request_body.py`), not one route's choice.
    for methods in document["paths"].values():
        for method, shown in methods.items():
            responses = shown["responses"]
            if method in WRITE_METHODS:
                responses.setdefault("403", CROSS_ORIGIN.as_openapi())
            if "application/json" in shown.get("requestBody", {}).get("content", {}):
                responses.setdefault("415", NOT_JSON.as_openapi())
            shown["responses"] = dict(sorted(responses.items()))
    return document


routes = [document_route(openapi_document, plane="control plane")]
