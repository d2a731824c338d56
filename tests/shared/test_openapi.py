"""The OpenAPI building blocks: routes are read from the app, an undocumented route is reported."""

from __future__ import annotations

import re

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route

from shared.openapi import (
    NOT_BLANK_PATTERN,
    build_document,
    error,
    json_answer,
    no_content,
    operation,
    routes_of,
    undocumented,
)


@operation("Read a thing", tag="things", responses={200: json_answer("The thing", {"type": "object"})})
async def get_thing(request: Request) -> JSONResponse:
    return JSONResponse({})


@operation("Delete a thing", tag="things", responses={204: no_content("Gone"), 404: error("No such thing")})
async def delete_thing(request: Request) -> JSONResponse:
    return JSONResponse({})


async def forgotten(request: Request) -> JSONResponse:
    return JSONResponse({})


async def page(request: Request) -> PlainTextResponse:
    return PlainTextResponse("<html>")


APP = Starlette(
    routes=[
        Route("/thing/{thing_id}", get_thing, methods=["GET"]),
        Route("/thing/{thing_id}", delete_thing, methods=["DELETE"]),
        Route("/forgotten", forgotten, methods=["POST"]),
        Mount("/ui", routes=[Route("/", page), Route("/things", page)]),
    ]
)
PARAMETERS = {"thing_id": {"description": "the thing", "schema": {"type": "string"}}}


def test_routes_are_read_from_the_app_with_mounts_and_without_implied_head() -> None:
    served = {(route.method, route.path) for route in routes_of(APP.routes)}

    assert served == {
        ("GET", "/thing/{thing_id}"),
        ("DELETE", "/thing/{thing_id}"),
        ("POST", "/forgotten"),
        ("GET", "/ui/"),
        ("GET", "/ui/things"),
    }


def test_a_route_without_an_operation_is_reported_unless_excluded() -> None:
    served = list(routes_of(APP.routes))

    assert undocumented(served, excluded=("/ui",)) == ["POST /forgotten"]
    assert undocumented(served, excluded=()) == ["POST /forgotten", "GET /ui/", "GET /ui/things"]


def test_the_document_holds_the_documented_routes_their_parameters_and_the_shared_errors() -> None:
    document = build_document(
        title="things",
        version="1",
        description="",
        served=list(routes_of(APP.routes)),
        path_parameters=PARAMETERS,
        schemas={},
        tags=[],
        secured=True,
    )

    assert set(document["paths"]) == {"/thing/{thing_id}"}
    reading = document["paths"]["/thing/{thing_id}"]["get"]
    assert reading["operationId"] == "get_thing"
    assert reading["parameters"] == [
        {"name": "thing_id", "in": "path", "required": True, **PARAMETERS["thing_id"]}
    ]
    assert set(reading["responses"]) == {"200", "401", "500"}  # 401 and 500 for every secured operation
    assert reading["responses"]["500"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert document["security"] == [{"adminToken": []}]
    assert document["components"]["securitySchemes"]["adminToken"]["scheme"] == "bearer"


def test_a_path_parameter_without_a_description_is_refused() -> None:
    with pytest.raises(KeyError, match="thing_id"):
        build_document(
            title="t",
            version="1",
            description="",
            served=list(routes_of(APP.routes)),
            path_parameters={},
            schemas={},
            tags=[],
            secured=False,
        )


def test_two_operations_with_one_operation_id_are_refused() -> None:
    async def get_thing(request: Request) -> JSONResponse:  # the same name as the module's
        return JSONResponse({})

    twin = operation("Twin", tag="things", responses={200: json_answer("x", {})})(get_thing)
    app = Starlette(routes=[*APP.routes, Route("/twin", twin, methods=["GET"])])

    with pytest.raises(ValueError, match="operationId 'get_thing'"):
        build_document(
            title="t",
            version="1",
            description="",
            served=list(routes_of(app.routes)),
            path_parameters=PARAMETERS,
            schemas={},
            tags=[],
            secured=False,
        )


def test_the_not_blank_pattern_is_what_strip_calls_blank() -> None:
    """Found by schemathesis: a name of one \\x1d passed the schema's `\\S` and was refused as empty."""
    pattern = re.compile(NOT_BLANK_PATTERN)

    disagreeing = [c for c in map(chr, range(0x110000)) if bool(pattern.search(c)) != bool(c.strip())]

    assert disagreeing == []
