"""Endpoints over HTTP: the exact shapes of the FFAAS seed, listing, deleting, validation."""

from __future__ import annotations

import re
import uuid

import pytest

from control_plane.app import create_app
from control_plane.settings import Settings
from tests.control_plane.conftest import PUBLIC_URL, create_endpoint
from tests.control_plane.local_client import LocalTestClient

RFC3339_MICROS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
NIL_UUID = "00000000-0000-0000-0000-000000000000"


def test_create_endpoint_returns_the_seed_shape(client: LocalTestClient) -> None:
    response = client.post("/endpoint", json={"name": "my-endpoint"})

    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"id", "name", "url", "active_deploy_id", "deploy_history", "created_at"}
    assert uuid.UUID(body["id"]).version == 4
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert body["name"] == "my-endpoint"
    assert body["url"] == f"{PUBLIC_URL}/{body['id']}"
    assert body["active_deploy_id"] == NIL_UUID
    assert body["deploy_history"] == []
    assert RFC3339_MICROS.fullmatch(body["created_at"])


def test_get_endpoint_returns_what_create_returned(client: LocalTestClient) -> None:
    created = create_endpoint(client)

    response = client.get(f"/endpoint/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created


def test_list_endpoints_returns_every_endpoint_oldest_first(client: LocalTestClient) -> None:
    assert client.get("/endpoint").json() == []
    names = [f"endpoint-{number}" for number in range(5)]
    created = [create_endpoint(client, name) for name in names]

    response = client.get("/endpoint")

    assert response.status_code == 200
    assert response.json() == created


def test_delete_endpoint_returns_204_and_forgets_it(client: LocalTestClient) -> None:
    kept = create_endpoint(client, "kept")
    doomed = create_endpoint(client, "doomed")

    response = client.delete(f"/endpoint/{doomed['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"/endpoint/{doomed['id']}").status_code == 404
    assert client.get("/endpoint").json() == [kept]
    assert client.delete(f"/endpoint/{doomed['id']}").status_code == 404


@pytest.mark.parametrize("endpoint_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_unknown_endpoint_is_404_naming_it(client: LocalTestClient, endpoint_id: str) -> None:
    for method, path in [
        ("GET", f"/endpoint/{endpoint_id}"),
        ("DELETE", f"/endpoint/{endpoint_id}"),
        ("GET", f"/endpoint/{endpoint_id}/env"),
        ("POST", f"/endpoint/{endpoint_id}/rollback"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"code": 404, "message": f"endpoint {endpoint_id} not found"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "name is required"),
        ({"name": 42}, "name must be a string"),
        ({"name": ""}, "name must not be empty"),
        ({"name": "   "}, "name must not be empty"),
        ({"name": "x" * 201}, "name must be at most 200 characters, got 201"),
    ],
)
def test_create_endpoint_rejects_a_bad_name(client: LocalTestClient, body: object, message: str) -> None:
    response = client.post("/endpoint", json=body)

    assert response.status_code == 400
    assert response.json() == {"code": 400, "message": message}
    assert client.get("/endpoint").json() == []


@pytest.mark.parametrize("content", [b"", b"[1, 2]", b'"name"', b"{not json", b"\xff\xfe"])
def test_create_endpoint_rejects_a_body_that_is_not_a_json_object(
    client: LocalTestClient, content: bytes
) -> None:
    response = client.post("/endpoint", content=content, headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert "JSON" in response.json()["message"]


def test_name_of_200_characters_is_accepted(client: LocalTestClient) -> None:
    assert create_endpoint(client, "x" * 200)["name"] == "x" * 200


def test_endpoints_survive_a_restart_of_the_control_plane(
    client: LocalTestClient, settings: Settings
) -> None:
    created = create_endpoint(client)
    with LocalTestClient(create_app(settings)) as restarted:
        assert restarted.get(f"/endpoint/{created['id']}").json() == created
