"""The data plane's OpenAPI document: its Starlette routes and its runs, valid, served at
/openapi.json (which is never taken for an endpoint id), and runs answering every documented method."""

from __future__ import annotations

import uuid

from openapi_spec_validator import validate
from starlette.testclient import TestClient

from data_plane.app import create_app
from data_plane.openapi import RUNS, openapi_document
from data_plane.settings import Settings
from shared.openapi import METHODS, routes_of, undocumented


def test_every_starlette_route_is_documented(settings: Settings) -> None:
    app = create_app(settings)

    assert undocumented(list(routes_of(app.starlette.routes)), ()) == []


def test_the_document_is_the_starlette_routes_and_the_runs(settings: Settings) -> None:
    app = create_app(settings)
    document = openapi_document(app.starlette.routes)

    documented = {(method, path) for path, methods in document["paths"].items() for method in methods}
    served = {(route.method.lower(), route.path) for route in routes_of(app.starlette.routes)}
    runs = {(method, path) for path, methods in RUNS.items() for method in methods}
    assert documented == served | runs
    assert {path for _, path in runs} == {
        "/{endpoint_id}",
        "/{endpoint_id}/{path}",
        "/processor/{processor_id}/run",
        "/processor/{processor_id}/run_with_prelude",
    }
    validate(document)


def test_openapi_json_is_the_document_not_an_endpoint(client: TestClient) -> None:
    response = client.get("/openapi.json")

    assert response.status_code == 200
    assert response.json()["info"]["title"] == "FFAAS data plane"
    assert "fh-conversation-id" not in response.headers


def test_runs_answer_every_documented_method(client: TestClient) -> None:
    endpoint, processor = str(uuid.uuid4()), str(uuid.uuid4())
    for method in METHODS:
        for path, expected in [
            (f"/{endpoint}", f"endpoint {endpoint} not found"),
            (f"/{endpoint}/a/b", f"endpoint {endpoint} not found"),
            (f"/processor/{processor}/run", f"processor {processor} not found"),
            (f"/processor/{processor}/run_with_prelude", f"processor {processor} not found"),
        ]:
            response = client.request(method.upper(), path)
            assert response.status_code == 404, (method, path)
            if method != "head":
                assert expected in response.json()["message"], (method, path, response.text)
