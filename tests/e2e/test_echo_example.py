"""The C echo example, deployed and called over HTTP exactly as examples/README.md shows."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.conftest import RedisServer
from tests.e2e.cluster import NIL_UUID, TIMESTAMP, UUID, Cluster
from tests.e2e.conftest import running_cluster

ENDPOINT_KEYS = {"id", "name", "url", "active_deploy_id", "deploy_history", "created_at"}
DEPLOY_KEYS = {"id", "endpoint_id", "hash", "created_at"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("echo"), redis_server) as cluster:
        yield cluster


def test_new_endpoint_has_the_seed_shape_with_nil_deploy_and_public_url(cluster: Cluster) -> None:
    endpoint = cluster.create_endpoint("My first ffaas app")

    assert set(endpoint) == ENDPOINT_KEYS, endpoint
    assert UUID.fullmatch(endpoint["id"]), endpoint
    assert endpoint["name"] == "My first ffaas app"
    assert endpoint["url"] == f"http://127.0.0.1:{cluster.public_port}/{endpoint['id']}"
    assert endpoint["active_deploy_id"] == NIL_UUID
    assert endpoint["deploy_history"] == []
    assert TIMESTAMP.fullmatch(endpoint["created_at"]), endpoint["created_at"]
    fetched = cluster.get_endpoint(endpoint["id"])
    assert fetched.status_code == 200
    assert fetched.json() == endpoint


def test_deploy_returns_the_deploy_and_becomes_active_in_history(cluster: Cluster, echo_wasm: bytes) -> None:
    endpoint = cluster.create_endpoint("echo")

    deploy = cluster.deploy(endpoint["id"], echo_wasm)

    assert set(deploy) == DEPLOY_KEYS, deploy
    assert UUID.fullmatch(deploy["id"]) and deploy["id"] != NIL_UUID, deploy
    assert deploy["endpoint_id"] == endpoint["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", deploy["hash"]), deploy
    assert TIMESTAMP.fullmatch(deploy["created_at"]), deploy
    fetched = cluster.get_endpoint(endpoint["id"]).json()
    assert fetched == {**endpoint, "active_deploy_id": deploy["id"], "deploy_history": [deploy]}


def test_echo_example_answers_method_path_query_headers_body_and_status(
    cluster: Cluster, echo_wasm: bytes
) -> None:
    endpoint = cluster.create_endpoint("echo")
    cluster.deploy(endpoint["id"], echo_wasm)

    # Straight after the deploy response, through the endpoint's own public URL.
    response = cluster.http.post(
        f"{endpoint['url']}/hello/world?status=201",
        content=b"hi",
        headers={"X-Echo": "yes", "User-Agent": "ffaas-e2e/1.0"},
    )

    assert response.status_code == 201, response.text
    assert response.headers["x-ffaas-example"] == "echo"
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "method": "POST",
        "path": "/hello/world",
        "query": "status=201",
        "user_agent": "ffaas-e2e/1.0",
        "x_echo": "yes",
        "greeting": None,
        "body": "hi",
    }


def test_echo_example_without_status_query_answers_200_for_any_method(
    cluster: Cluster, echo_wasm: bytes
) -> None:
    endpoint = cluster.create_endpoint("echo")
    cluster.deploy(endpoint["id"], echo_wasm)

    for method in ("GET", "PUT", "PATCH", "DELETE"):
        response = cluster.http.request(method, f"{endpoint['url']}/a/b?x=1&y=%20")
        assert response.status_code == 200, (method, response.text)
        echoed = response.json()
        assert (echoed["method"], echoed["path"], echoed["query"]) == (method, "/a/b", "x=1&y=%20")
        assert echoed["body"] == ""
        assert echoed["x_echo"] is None


def test_endpoint_env_set_over_http_reaches_the_module(cluster: Cluster, echo_wasm: bytes) -> None:
    endpoint = cluster.create_endpoint("echo")
    cluster.deploy(endpoint["id"], echo_wasm)
    env_url = f"{cluster.admin_url}/endpoint/{endpoint['id']}/env"

    stored = cluster.admin.put(env_url, json={"GREETING": "bonjour"})

    assert stored.status_code == 200, stored.text
    assert stored.json() == {"GREETING": "bonjour"}
    assert cluster.admin.get(env_url).json() == {"GREETING": "bonjour"}
    # The next run, right after the PUT response, sees it.
    assert cluster.http.get(f"{endpoint['url']}/x").json()["greeting"] == "bonjour"

    cluster.admin.put(env_url, json={"GREETING": "hallo"})
    assert cluster.http.get(f"{endpoint['url']}/x").json()["greeting"] == "hallo"

    cluster.admin.put(env_url, json={})
    assert cluster.http.get(f"{endpoint['url']}/x").json()["greeting"] is None


def test_endpoint_env_survives_a_new_deploy(cluster: Cluster, echo_wasm: bytes) -> None:
    endpoint = cluster.create_endpoint("echo")
    cluster.admin.put(f"{cluster.admin_url}/endpoint/{endpoint['id']}/env", json={"GREETING": "hej"})

    cluster.deploy(endpoint["id"], echo_wasm)

    assert cluster.http.get(endpoint["url"] + "/x").json()["greeting"] == "hej"
