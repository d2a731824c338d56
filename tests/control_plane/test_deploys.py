"""Deploying modules over HTTP: the deploy shape, activation, publishing, and every refusal."""

from __future__ import annotations

import re
import uuid

import pytest
import redis

from shared.content_hash import content_hash
from shared.events import EndpointRoute, RouteEvent
from shared.keys import Keys
from tests.control_plane import wasm_modules
from tests.control_plane.conftest import (
    assert_nothing_stored,
    create_endpoint,
    deploy,
    stored_route,
    subscribed,
)
from tests.control_plane.local_client import LocalTestClient

RFC3339_MICROS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def test_deploy_returns_the_seed_shape_and_becomes_active(client: LocalTestClient) -> None:
    endpoint = create_endpoint(client)
    module = wasm_modules.command_module()

    response = client.post(
        f"/endpoint/{endpoint['id']}/deploy",
        content=module,
        headers={"content-type": "application/octet-stream"},
    )

    assert response.status_code == 201
    created = response.json()
    assert set(created) == {"id", "endpoint_id", "hash", "created_at"}
    assert str(uuid.UUID(created["id"])) == created["id"]
    assert created["endpoint_id"] == endpoint["id"]
    assert created["hash"] == content_hash(module)
    assert re.fullmatch(r"[0-9a-f]{32}", created["hash"])
    assert RFC3339_MICROS.fullmatch(created["created_at"])
    stored = client.get(f"/endpoint/{endpoint['id']}").json()
    assert stored["active_deploy_id"] == created["id"]
    assert stored["deploy_history"] == [created]


def test_deploy_accepts_any_content_type(client: LocalTestClient) -> None:
    endpoint = create_endpoint(client)

    response = client.post(f"/endpoint/{endpoint['id']}/deploy", content=wasm_modules.command_module())

    assert response.status_code == 201


def test_each_deploy_is_appended_to_the_history_and_the_newest_is_active(client: LocalTestClient) -> None:
    endpoint = create_endpoint(client)
    deploys = [deploy(client, endpoint["id"], wasm_modules.command_module(marker)) for marker in (1, 2, 1)]

    stored = client.get(f"/endpoint/{endpoint['id']}").json()

    assert stored["deploy_history"] == deploys
    assert stored["active_deploy_id"] == deploys[-1]["id"]
    assert deploys[0]["hash"] == deploys[2]["hash"] != deploys[1]["hash"]


def test_deploy_publishes_module_bytes_route_and_event(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    endpoint = create_endpoint(client)
    client.put(f"/endpoint/{endpoint['id']}/env", json={"GREETING": "hello"})
    module = wasm_modules.command_module()
    with subscribed(redis_client, keys) as events:
        created = deploy(client, endpoint["id"], module)
        message = events.get_message(ignore_subscribe_messages=True, timeout=5)

    assert redis_client.get(keys.module(created["hash"])) == module
    route = stored_route(redis_client, keys, endpoint["id"])
    assert route == EndpointRoute(endpoint["id"], created["id"], created["hash"], {"GREETING": "hello"})
    assert message is not None
    event = RouteEvent.unpack(message["data"])
    assert event.endpoint_id == endpoint["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", event.event_id)


def test_deleting_an_endpoint_removes_its_route_and_announces_it(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    endpoint = create_endpoint(client)
    deploy(client, endpoint["id"], wasm_modules.command_module())
    with subscribed(redis_client, keys) as events:
        assert client.delete(f"/endpoint/{endpoint['id']}").status_code == 204
        message = events.get_message(ignore_subscribe_messages=True, timeout=5)

    assert redis_client.hget(keys.routes, endpoint["id"]) is None
    assert message is not None
    assert RouteEvent.unpack(message["data"]).endpoint_id == endpoint["id"]


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        (wasm_modules.NOT_WASM, "not a WebAssembly module: missing \\0asm magic"),
        (b"\0asm", "not a WebAssembly module: the 8-byte header is truncated"),
        (wasm_modules.GARBAGE_AFTER_MAGIC, "invalid WebAssembly module: "),
        (
            wasm_modules.COMPONENT_HEADER,
            "WebAssembly components are not supported; deploy a WASI preview1 command module (_start)",
        ),
        (wasm_modules.NO_START, "module has no exported function `_start`"),
        (wasm_modules.NO_MEMORY, "module has no exported memory `memory`"),
        (wasm_modules.FOREIGN_IMPORT, "module imports `env.host_call`"),
        (b"", "request body is empty"),
    ],
    ids=["not-wasm", "truncated", "garbage", "component", "no-start", "no-memory", "foreign-import", "empty"],
)
def test_deploy_refuses_modules_the_wagi_contract_cannot_run_and_stores_nothing(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys, module: bytes, reason: str
) -> None:
    endpoint = create_endpoint(client)
    good = deploy(client, endpoint["id"], wasm_modules.command_module())

    response = client.post(f"/endpoint/{endpoint['id']}/deploy", content=module)

    assert response.status_code == 400
    assert response.json()["code"] == 400
    assert response.json()["message"].startswith(reason)
    assert_nothing_stored(client, redis_client, keys, endpoint["id"], good, module)


def test_deploy_with_a_malformed_content_length_is_400(client: LocalTestClient) -> None:
    endpoint = create_endpoint(client)

    response = client.post(
        f"/endpoint/{endpoint['id']}/deploy", content=b"\0asm", headers={"content-length": "lots"}
    )

    assert response.status_code == 400
    assert "Content-Length" in response.json()["message"]


def test_deploy_to_an_unknown_endpoint_is_404(client: LocalTestClient) -> None:
    missing = str(uuid.uuid4())

    response = client.post(f"/endpoint/{missing}/deploy", content=wasm_modules.command_module())

    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": f"endpoint {missing} not found"}
