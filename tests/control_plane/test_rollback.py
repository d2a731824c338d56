"""Rollback: an older deploy becomes active again; the history never changes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis

from shared.keys import Keys
from tests.control_plane import wasm_modules
from tests.control_plane.conftest import create_endpoint, deploy, stored_route
from tests.control_plane.local_client import LocalTestClient


@pytest.fixture
def deployed(client: LocalTestClient) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An endpoint with three deploys; the third is active."""
    endpoint = create_endpoint(client)
    deploys = [deploy(client, endpoint["id"], wasm_modules.command_module(marker)) for marker in (1, 2, 3)]
    return endpoint, deploys


def rollback(client: LocalTestClient, endpoint_id: str, body: object = None) -> Any:
    if body is None:
        return client.post(f"/endpoint/{endpoint_id}/rollback")
    return client.post(f"/endpoint/{endpoint_id}/rollback", json=body)


def test_rollback_without_a_deploy_id_activates_the_preceding_deploy(
    client: LocalTestClient,
    deployed: tuple[dict[str, Any], list[dict[str, Any]]],
    redis_client: redis.Redis,
    keys: Keys,
) -> None:
    endpoint, deploys = deployed

    response = rollback(client, endpoint["id"])

    assert response.status_code == 200
    body = response.json()
    assert body == {**client.get(f"/endpoint/{endpoint['id']}").json()}
    assert body["active_deploy_id"] == deploys[1]["id"]
    assert body["deploy_history"] == deploys
    route = stored_route(redis_client, keys, endpoint["id"])
    assert (route.deploy_id, route.module_hash) == (deploys[1]["id"], deploys[1]["hash"])


def test_repeated_rollbacks_walk_back_through_the_history(
    client: LocalTestClient, deployed: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    endpoint, deploys = deployed

    assert rollback(client, endpoint["id"]).json()["active_deploy_id"] == deploys[1]["id"]
    assert rollback(client, endpoint["id"]).json()["active_deploy_id"] == deploys[0]["id"]
    response = rollback(client, endpoint["id"])

    assert response.status_code == 400
    assert response.json() == {
        "code": 400,
        "message": f"active deploy {deploys[0]['id']} is the oldest of endpoint {endpoint['id']}; "
        "there is no earlier deploy to roll back to",
    }


def test_rollback_to_a_named_deploy_activates_it(
    client: LocalTestClient, deployed: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    endpoint, deploys = deployed

    response = rollback(client, endpoint["id"], {"deploy_id": deploys[0]["id"]})

    assert response.status_code == 200
    assert response.json()["active_deploy_id"] == deploys[0]["id"]
    assert response.json()["deploy_history"] == deploys
    forward = rollback(client, endpoint["id"], {"deploy_id": deploys[2]["id"]})
    assert forward.json()["active_deploy_id"] == deploys[2]["id"]


def test_an_empty_json_body_rolls_back_to_the_preceding_deploy(
    client: LocalTestClient, deployed: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    endpoint, deploys = deployed

    response = rollback(client, endpoint["id"], {})

    assert response.json()["active_deploy_id"] == deploys[1]["id"]


def test_rollback_to_a_deploy_of_another_endpoint_is_404_naming_it(
    client: LocalTestClient, deployed: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    endpoint, deploys = deployed
    other = create_endpoint(client, "other")
    foreign = deploy(client, other["id"], wasm_modules.command_module(9))

    for deploy_id in (foreign["id"], str(uuid.uuid4())):
        response = rollback(client, endpoint["id"], {"deploy_id": deploy_id})
        assert response.status_code == 404
        assert response.json() == {
            "code": 404,
            "message": f"deploy {deploy_id} not found in endpoint {endpoint['id']}",
        }
    assert client.get(f"/endpoint/{endpoint['id']}").json()["active_deploy_id"] == deploys[2]["id"]


def test_rollback_of_an_endpoint_never_deployed_is_400(client: LocalTestClient) -> None:
    endpoint = create_endpoint(client)

    response = rollback(client, endpoint["id"])

    assert response.status_code == 400
    assert response.json()["message"] == f"endpoint {endpoint['id']} has no deploy to roll back from"


@pytest.mark.parametrize(
    ("body", "message"),
    [({"deploy_id": 7}, "deploy_id must be a string"), ([1], "request body must be a JSON object or empty")],
)
def test_rollback_rejects_a_malformed_body(
    client: LocalTestClient, deployed: tuple[dict[str, Any], list[dict[str, Any]]], body: object, message: str
) -> None:
    endpoint, _ = deployed

    response = rollback(client, endpoint["id"], body)

    assert response.status_code == 400
    assert response.json() == {"code": 400, "message": message}
