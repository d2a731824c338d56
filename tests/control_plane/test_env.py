"""Per-endpoint environment variables: replace-all PUT, GET, validation, published with the route."""

from __future__ import annotations

import pytest
import redis

from shared.events import EndpointRoute
from shared.keys import Keys
from tests.control_plane import wasm_modules
from tests.control_plane.conftest import create_endpoint, deploy, stored_route, subscribed
from tests.control_plane.local_client import LocalTestClient


def test_env_of_a_new_endpoint_is_empty(client: LocalTestClient) -> None:
    endpoint = create_endpoint(client)

    response = client.get(f"/endpoint/{endpoint['id']}/env")

    assert response.status_code == 200
    assert response.json() == {}


def test_put_env_replaces_every_variable(client: LocalTestClient) -> None:
    endpoint = create_endpoint(client)
    path = f"/endpoint/{endpoint['id']}/env"
    client.put(path, json={"OLD": "1", "KEPT": "a"})

    response = client.put(path, json={"KEPT": "b", "NEW": "", "lower_case": "x=y; z"})

    assert response.status_code == 200
    assert response.json() == {"KEPT": "b", "NEW": "", "lower_case": "x=y; z"}
    assert client.get(path).json() == {"KEPT": "b", "NEW": "", "lower_case": "x=y; z"}
    assert client.put(path, json={}).json() == {}
    assert client.get(path).json() == {}


def test_env_lands_in_the_published_route(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    endpoint = create_endpoint(client)
    created = deploy(client, endpoint["id"], wasm_modules.command_module())
    with subscribed(redis_client, keys) as events:
        client.put(f"/endpoint/{endpoint['id']}/env", json={"API_BASE": "https://example.test"})
        message = events.get_message(ignore_subscribe_messages=True, timeout=5)

    route = stored_route(redis_client, keys, endpoint["id"])
    assert route == EndpointRoute(
        endpoint["id"], created["id"], created["hash"], {"API_BASE": "https://example.test"}
    )
    assert message is not None


def test_env_set_before_the_first_deploy_is_published_with_it(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    endpoint = create_endpoint(client)
    client.put(f"/endpoint/{endpoint['id']}/env", json={"MODE": "test"})
    assert redis_client.hget(keys.routes, endpoint["id"]) is None

    deploy(client, endpoint["id"], wasm_modules.command_module())

    assert stored_route(redis_client, keys, endpoint["id"]).env == {"MODE": "test"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"1ABC": "x"}, "environment variable name '1ABC' is invalid"),
        ({"WITH-DASH": "x"}, "environment variable name 'WITH-DASH' is invalid"),
        ({"": "x"}, "environment variable name '' is invalid"),
        ({"HTTP_HOST": "x"}, "environment variable name 'HTTP_HOST' is reserved"),
        ({"X_FULL_URL": "x"}, "environment variable name 'X_FULL_URL' is reserved"),
        ({"PATH_INFO": "x"}, "environment variable name 'PATH_INFO' is reserved"),
        ({"REQUEST_METHOD": "x"}, "environment variable name 'REQUEST_METHOD' is reserved"),
        ({"GOOD": "x", "SERVER_PORT": "1"}, "environment variable name 'SERVER_PORT' is reserved"),
        ({"COUNT": 3}, "environment variable COUNT: value must be a string"),
        ({"BIG": "x" * 4097}, "environment variable BIG: value is 4097 characters (at most 4096)"),
        ({f"V{n}": "x" for n in range(101)}, "too many environment variables: 101 (at most 100)"),
        (["A"], "request body must be a JSON object of environment variable names to string values"),
    ],
)
def test_put_env_rejects_bad_variables_naming_them_and_keeps_the_old_env(
    client: LocalTestClient, env: object, message: str
) -> None:
    endpoint = create_endpoint(client)
    path = f"/endpoint/{endpoint['id']}/env"
    client.put(path, json={"KEPT": "yes"})

    response = client.put(path, json=env)

    assert response.status_code == 400
    assert response.json()["code"] == 400
    assert response.json()["message"].startswith(message)
    assert client.get(path).json() == {"KEPT": "yes"}


def test_limits_are_inclusive(client: LocalTestClient) -> None:
    endpoint = create_endpoint(client)
    env = {f"V{n}": "x" * 4096 for n in range(100)}

    response = client.put(f"/endpoint/{endpoint['id']}/env", json=env)

    assert response.status_code == 200
    assert response.json() == env


def test_put_env_on_an_unknown_endpoint_is_404(client: LocalTestClient) -> None:
    response = client.put("/endpoint/missing/env", json={"A": "b"})

    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "endpoint missing not found"}
