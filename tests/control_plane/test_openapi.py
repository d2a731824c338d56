"""The control plane's OpenAPI document (GET /openapi.json) is its routes, valid, and served openly.

A route added without `@operation` fails `test_every_route_is_documented`; HTML pages are kept
out of the JSON API by `NOT_JSON_API` (control_plane/routes/openapi.py), the one place to list them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from openapi_spec_validator import validate

from control_plane.app import create_app
from control_plane.routes.openapi import NOT_JSON_API, openapi_document
from control_plane.settings import Settings
from shared.openapi import is_excluded, routes_of, undocumented
from tests.control_plane.local_client import LocalTestClient

TOKEN = "openapi-test-token"


@pytest.fixture
def secured(settings: Settings) -> Iterator[LocalTestClient]:
    with LocalTestClient(create_app(replace(settings, admin_token=TOKEN))) as client:
        yield client


def served_operations(settings: Settings) -> set[tuple[str, str]]:
    app = create_app(settings)
    return {
        (route.method.lower(), route.path)
        for route in routes_of(app.routes)
        if not is_excluded(route.path, NOT_JSON_API)
    }


def test_every_route_is_documented(settings: Settings) -> None:
    app = create_app(settings)

    assert undocumented(list(routes_of(app.routes)), NOT_JSON_API) == []


def test_the_document_lists_exactly_the_apps_routes(settings: Settings) -> None:
    document = openapi_document(create_app(settings).routes)

    documented = {(method, path) for path, methods in document["paths"].items() for method in methods}
    assert documented == served_operations(settings)


def test_the_document_is_valid_openapi_3_1(settings: Settings) -> None:
    document = openapi_document(create_app(settings).routes)

    validate(document)
    assert document["openapi"] == "3.1.0"


def test_it_is_served_without_the_token(secured: LocalTestClient) -> None:
    response = secured.get("/openapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["info"]["title"] == "FFAAS control plane"


def test_public_operations_are_exactly_those_open_without_the_token(secured: LocalTestClient) -> None:
    document = secured.get("/openapi.json").json()
    for path, methods in document["paths"].items():
        url = path.replace("{", "").replace("}", "")  # any id: only authentication is asked about
        for method, described in methods.items():
            answered = secured.request(method.upper(), url)
            public = described.get("security") == []
            assert (answered.status_code != 401) == public, f"{method.upper()} {path}: {answered.status_code}"
            if not public:
                assert "401" in described["responses"]


def test_every_response_is_the_error_shape_for_every_error_status(settings: Settings) -> None:
    document = openapi_document(create_app(settings).routes)

    for path, methods in document["paths"].items():
        for method, described in methods.items():
            for status, answer in described["responses"].items():
                if status.isdigit() and int(status) >= 400:
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, f"{method} {path} {status}"


def test_a_405_lists_every_method_of_the_path(client: LocalTestClient) -> None:
    response = client.request("OPTIONS", "/endpoint")
    on_env = client.patch("/endpoint/some-id/env")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert on_env.headers["allow"] == "GET, HEAD, PUT"
    assert response.json() == {"code": 405, "message": "method OPTIONS is not allowed on /endpoint"}
