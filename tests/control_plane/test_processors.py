"""The processor admin API (fh-http seed): shapes, language aliases, validation, 404s, auth."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from control_plane.app import create_app
from control_plane.settings import Settings
from tests.control_plane.local_client import LocalTestClient

SEED_KEYS = {"id", "name", "language", "runtime", "code"}
VERSION_KEYS = {"active_version_id", "version_history"}
JS_CODE = 'async function main(fh, request) {\n  return "hello";\n}\n'
TS_CODE = "async function main(fh: any, request: any): Promise<string> {\n  return 'hi';\n}\n"


def processor_body(**overrides: Any) -> dict[str, Any]:
    return {"name": "greeter", "language": "js", "runtime": "v8", "code": JS_CODE, **overrides}


def create_processor(client: LocalTestClient, **overrides: Any) -> dict[str, Any]:
    response = client.post("/admin/processor", json=processor_body(**overrides))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_create_returns_the_seed_object_with_a_new_uuid4_and_its_first_version(
    client: LocalTestClient,
) -> None:
    response = client.post("/admin/processor", json=processor_body())

    assert response.status_code == 201
    created = response.json()
    assert set(created) == SEED_KEYS | VERSION_KEYS
    assert uuid.UUID(created["id"]).version == 4
    assert {key: created[key] for key in SEED_KEYS - {"id"}} == processor_body()
    [version] = created["version_history"]
    assert created["active_version_id"] == version["id"]
    assert uuid.UUID(version["id"]).version == 4


def test_get_list_put_delete_round_trip(client: LocalTestClient) -> None:
    first = create_processor(client, name="first")
    second = create_processor(client, name="second", language="ts", runtime="wasm", code=TS_CODE)

    assert client.get(f"/admin/processor/{first['id']}").json() == first
    assert client.get("/admin/processor").json() == [first, second]

    replaced = client.put(
        f"/admin/processor/{first['id']}", json=processor_body(name="renamed", runtime="wasm")
    )
    assert replaced.status_code == 200
    new_version = replaced.json()["version_history"][-1]
    assert replaced.json() == {
        **first,
        "name": "renamed",
        "runtime": "wasm",
        "active_version_id": new_version["id"],
        "version_history": [*first["version_history"], new_version],
    }
    assert client.get(f"/admin/processor/{first['id']}").json() == replaced.json()

    deleted = client.delete(f"/admin/processor/{first['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert client.get(f"/admin/processor/{first['id']}").status_code == 404
    assert client.get("/admin/processor").json() == [second]


def test_an_empty_list_is_an_empty_array(client: LocalTestClient) -> None:
    assert client.get("/admin/processor").json() == []


@pytest.mark.parametrize(
    ("given", "stored"), [("js", "js"), ("javascript", "js"), ("ts", "ts"), ("typescript", "ts")]
)
def test_language_aliases_are_stored_normalised(client: LocalTestClient, given: str, stored: str) -> None:
    created = create_processor(client, language=given)

    assert created["language"] == stored
    assert client.get(f"/admin/processor/{created['id']}").json()["language"] == stored


def test_the_code_is_returned_exactly_as_saved(client: LocalTestClient) -> None:
    code = "// a comment é 🙂\ninterface X { a: number }\nfunction main(r: X) {   return 'x' }\n"

    created = create_processor(client, language="ts", code=code)

    assert created["code"] == code
    assert client.get(f"/admin/processor/{created['id']}").json()["code"] == code


@pytest.mark.parametrize("missing", ["name", "language", "runtime", "code"])
def test_put_needs_every_field(client: LocalTestClient, missing: str) -> None:
    created = create_processor(client)
    body = processor_body(name="changed")
    del body[missing]

    response = client.put(f"/admin/processor/{created['id']}", json=body)

    assert response.status_code == 400
    assert response.json() == {
        "code": 400,
        "message": f"{missing} is required (PUT replaces the whole processor: "
        "send name, language, runtime and code)",
    }
    assert client.get(f"/admin/processor/{created['id']}").json() == created


def test_post_names_every_missing_field(client: LocalTestClient) -> None:
    response = client.post("/admin/processor", json={"name": "x", "runtime": None})

    assert response.status_code == 400
    assert response.json()["message"] == "language, runtime, code are required"


def test_put_with_a_different_id_in_the_body_is_400(client: LocalTestClient) -> None:
    created = create_processor(client)

    response = client.put(f"/admin/processor/{created['id']}", json=processor_body(id=str(uuid.uuid4())))

    assert response.status_code == 400
    assert "differs from the id in the path" in response.json()["message"]


@pytest.mark.parametrize("processor_id", [str(uuid.uuid4()), "not-a-uuid"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_an_unknown_id_is_404_naming_it(client: LocalTestClient, method: str, processor_id: str) -> None:
    body = processor_body() if method == "PUT" else None

    response = client.request(method, f"/admin/processor/{processor_id}", json=body)

    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": f"processor {processor_id} not found"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"language": "python"}, 'language must be one of js, ts (or javascript, typescript), got "python"'),
        ({"language": "JS"}, 'language must be one of js, ts (or javascript, typescript), got "JS"'),
        ({"runtime": "node"}, 'runtime must be one of v8, wasm, got "node"'),
        ({"name": ""}, "name must not be empty"),
        ({"name": "   "}, "name must not be empty"),
        ({"name": "x" * 201}, "name must be at most 200 characters, got 201"),
        ({"code": ""}, "code must not be empty"),
        ({"code": "\n  \n"}, "code must not be empty"),
        ({"name": 7}, "name must be a string, got a number"),
        ({"language": ["js"]}, "language must be a string, got an array"),
        ({"runtime": True}, "runtime must be a string, got a boolean"),
        ({"code": {"main": 1}}, "code must be a string, got an object"),
    ],
)
def test_invalid_fields_are_400_naming_the_field(
    client: LocalTestClient, overrides: dict[str, Any], message: str
) -> None:
    response = client.post("/admin/processor", json=processor_body(**overrides))

    assert response.status_code == 400
    assert response.json() == {"code": 400, "message": message}
    assert client.get("/admin/processor").json() == []


@pytest.mark.parametrize("body", [b"[1, 2]", b'"code"', b"{not json", b""])
def test_a_body_that_is_not_a_json_object_is_400(client: LocalTestClient, body: bytes) -> None:
    response = client.post("/admin/processor", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert response.json()["message"].startswith(
        ("request body must be a JSON object", "request body is not")
    )


def test_a_lone_surrogate_is_400(client: LocalTestClient) -> None:
    body = b'{"name": "x", "language": "js", "runtime": "v8", "code": "function main() {} \\ud800"}'

    response = client.post("/admin/processor", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert response.json()["message"].startswith("code is not valid Unicode text")


TOKEN = "processor-admin-token"


@pytest.fixture
def guarded(settings: Settings) -> Iterator[LocalTestClient]:
    with LocalTestClient(create_app(replace(settings, admin_token=TOKEN))) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/admin/processor"),
        ("GET", "/admin/processor"),
        ("GET", f"/admin/processor/{uuid.uuid4()}"),
        ("PUT", f"/admin/processor/{uuid.uuid4()}"),
        ("DELETE", f"/admin/processor/{uuid.uuid4()}"),
    ],
)
def test_processor_routes_need_the_admin_token(guarded: LocalTestClient, method: str, path: str) -> None:
    body = processor_body() if method in ("POST", "PUT") else None

    response = guarded.request(method, path, json=body)

    assert response.status_code == 401
    assert response.json()["code"] == 401
    assert guarded.get("/admin/processor", headers={"authorization": f"Bearer {TOKEN}"}).json() == []


def test_the_admin_token_opens_the_processor_routes(guarded: LocalTestClient) -> None:
    headers = {"authorization": f"Bearer {TOKEN}"}

    created = guarded.post("/admin/processor", json=processor_body(), headers=headers)
    processor_id = created.json()["id"]

    assert created.status_code == 201
    assert guarded.get(f"/admin/processor/{processor_id}", headers=headers).status_code == 200
    assert (
        guarded.put(f"/admin/processor/{processor_id}", json=processor_body(), headers=headers).status_code
        == 200
    )
    assert guarded.delete(f"/admin/processor/{processor_id}", headers=headers).status_code == 204
