"""The checker the e2e clients run on every response: it finds the operation and refuses what the
document does not allow (here on responses made up for it, so each refusal is shown to happen)."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.openapi_conformance import Conformance, ConformanceError

DOCUMENT = {
    "openapi": "3.1.0",
    "paths": {
        "/thing/{thing_id}": {
            "get": {
                "responses": {
                    "200": {
                        "description": "",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}},
                    },
                    "404": {
                        "description": "",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                }
            },
            "delete": {"responses": {"204": {"description": ""}}},
        },
        "/{endpoint_id}/{path}": {
            "get": {"responses": {"default": {"description": "", "content": {"*/*": {}}}}}
        },
        "/processor/{processor_id}/run": {
            "get": {
                "responses": {
                    "404": {
                        "description": "",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    }
                }
            }
        },
    },
    "components": {
        "schemas": {
            "Thing": {
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "string"}},
                "additionalProperties": False,
            },
            "Error": {"type": "object", "required": ["code", "message"]},
        }
    },
}


def answered(
    method: str, path: str, status: int, body: bytes = b"", content_type: str = "application/json"
) -> httpx.Response:
    headers = {"content-type": content_type} if body else {}
    return httpx.Response(
        status, headers=headers, content=body, request=httpx.Request(method, f"http://plane{path}")
    )


def test_a_documented_response_passes() -> None:
    checker = Conformance(DOCUMENT)

    checker.check(answered("GET", "/thing/1", 200, b'{"id": "1"}'))
    checker.check(answered("DELETE", "/thing/1", 204))
    checker.check(answered("GET", "/e/a/b/c", 418, b"<teapot>", "text/html"))  # a run: anything


@pytest.mark.parametrize(
    ("response", "complaint"),
    [
        (answered("GET", "/thing/1", 200, b'{"id": 1}'), "does not allow: id: 1 is not of type 'string'"),
        (answered("GET", "/thing/1", 200, b'{"id": "1", "extra": 2}'), "Additional properties"),
        (
            answered("GET", "/thing/1", 500, b'{"code": 500, "message": "x"}'),
            "answered 500, which the OpenAPI document does not list",
        ),
        (
            answered("GET", "/thing/1", 404, b"not found", "text/plain"),
            "as text/plain; documented: application/json",
        ),
        (answered("GET", "/thing/1", 404, b'{"message": "x"}'), "'code' is a required property"),
        (answered("DELETE", "/thing/1", 204, b"{}"), "with a body; none is documented"),
    ],
)
def test_what_the_document_does_not_allow_is_refused(response: httpx.Response, complaint: str) -> None:
    with pytest.raises(ConformanceError, match=None) as refused:
        Conformance(DOCUMENT).check(response)

    assert complaint in str(refused.value)


def test_the_most_literal_path_wins_and_unknown_requests_are_not_judged() -> None:
    checker = Conformance(DOCUMENT)

    with pytest.raises(ConformanceError, match="documented as /processor/{processor_id}/run"):
        checker.check(answered("GET", "/processor/p/run", 200, b"{}"))
    checker.check(answered("PATCH", "/thing/1", 405, b"{}"))  # no such operation: the route tests' job
    checker.check(answered("GET", "/nowhere", 404, b"{}"))
