"""Publishing to Redis: acks give read-your-writes, startup reconcile, Redis outages."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from control_plane.app import create_app
from control_plane.settings import Settings
from shared.events import EndpointRoute, RouteEvent
from shared.keys import Keys
from tests.conftest import RedisServer
from tests.control_plane import wasm_modules
from tests.control_plane.conftest import create_endpoint, deploy, stored_route, subscribed
from tests.control_plane.local_client import LocalTestClient


class FakeDataPlane(threading.Thread):
    """Subscribes like a data plane, and acks each event after `delay_s`, recording when."""

    def __init__(self, redis_url: str, keys: Keys, delay_s: float) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(redis_url)
        self.keys = keys
        self.delay_s = delay_s
        self.acked: list[RouteEvent] = []
        self.subscribed = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        pubsub = self.client.pubsub()
        pubsub.subscribe(self.keys.events)
        pubsub.get_message(timeout=5)
        self.subscribed.set()
        while not self.stopping.is_set():
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
            if message is None:
                continue
            event = RouteEvent.unpack(message["data"])
            time.sleep(self.delay_s)
            self.acked.append(event)
            self.client.rpush(self.keys.acks(event.event_id), b"fake-data-plane")
        pubsub.close()
        self.client.close()


@pytest.fixture
def data_plane(redis_url: str, keys: Keys) -> Iterator[FakeDataPlane]:
    plane = FakeDataPlane(redis_url, keys, delay_s=0.3)
    plane.start()
    assert plane.subscribed.wait(5)
    yield plane
    plane.stopping.set()
    plane.join(5)


def test_deploy_response_comes_back_only_after_the_data_plane_acked(
    settings: Settings, data_plane: FakeDataPlane, redis_client: redis.Redis, keys: Keys
) -> None:
    with LocalTestClient(create_app(replace(settings, deploy_ack_timeout_ms=10_000))) as client:
        endpoint = create_endpoint(client)

        created = deploy(client, endpoint["id"], wasm_modules.command_module())

        # The fake data plane acks 0.3 s after the event; without waiting, the response beats it.
        [event] = [event for event in data_plane.acked if event.endpoint_id != "*"]  # "*": startup
        assert event.endpoint_id == endpoint["id"]
        assert redis_client.exists(keys.acks(event.event_id)) == 0
        route = stored_route(redis_client, keys, endpoint["id"])
        assert route.deploy_id == created["id"]


def test_a_missing_ack_is_logged_and_the_deploy_still_succeeds(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = create_endpoint(client)
    with (
        caplog.at_level(logging.WARNING, logger="ffaas.control_plane.publisher"),
        subscribed(redis_client, keys),
    ):
        response = client.post(f"/endpoint/{endpoint['id']}/deploy", content=wasm_modules.command_module())

    assert response.status_code == 201
    assert "0 of 1 data plane(s) acknowledged within 200 ms (FFAAS_DEPLOY_ACK_TIMEOUT_MS)" in caplog.text


def test_startup_reconcile_refills_a_flushed_redis(
    settings: Settings, redis_client: redis.Redis, keys: Keys, key_prefix: str
) -> None:
    module = wasm_modules.command_module()
    with LocalTestClient(create_app(settings)) as client:
        live = create_endpoint(client, "live")
        created = deploy(client, live["id"], module)
        client.put(f"/endpoint/{live['id']}/env", json={"MODE": "prod"})
        undeployed = create_endpoint(client, "undeployed")
    for key in redis_client.scan_iter(f"{key_prefix}:*"):
        redis_client.delete(key)
    stale_route = EndpointRoute("gone", "deploy", "0" * 32).pack()
    redis_client.hset(keys.routes, mapping={"gone": stale_route, undeployed["id"]: stale_route})

    with subscribed(redis_client, keys) as events, LocalTestClient(create_app(settings)):
        message = events.get_message(ignore_subscribe_messages=True, timeout=5)

    assert redis_client.get(keys.module(created["hash"])) == module
    assert redis_client.hgetall(keys.routes) == {
        live["id"].encode(): EndpointRoute(
            live["id"], created["id"], created["hash"], {"MODE": "prod"}
        ).pack()
    }
    assert message is not None
    assert RouteEvent.unpack(message["data"]).endpoint_id == "*"


def test_a_rollback_refills_module_bytes_missing_from_redis(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    endpoint = create_endpoint(client)
    first_module = wasm_modules.command_module(1)
    first = deploy(client, endpoint["id"], first_module)
    deploy(client, endpoint["id"], wasm_modules.command_module(2))
    redis_client.delete(keys.module(first["hash"]))

    client.post(f"/endpoint/{endpoint['id']}/rollback")

    assert redis_client.get(keys.module(first["hash"])) == first_module


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, so stopping it disturbs no other test."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def test_deploy_while_redis_is_down_is_503_and_stays_stored(
    settings: Settings, own_redis: RedisServer
) -> None:
    settings = replace(settings, redis_url=own_redis.url)
    module = wasm_modules.command_module()
    with LocalTestClient(create_app(settings)) as client:
        endpoint = create_endpoint(client)
        own_redis.stop()

        response = client.post(f"/endpoint/{endpoint['id']}/deploy", content=module)

        stored = client.get(f"/endpoint/{endpoint['id']}").json()
        assert response.status_code == 503
        [deploy_row] = stored["deploy_history"]
        assert response.json() == {
            "code": 503,
            "message": f"deploy {deploy_row['id']} is stored but could not be published: "
            "Redis unavailable (FFAAS_REDIS_URL); retry later",
        }
        assert response.headers["retry-after"] == "1"
        assert stored["active_deploy_id"] == deploy_row["id"]
        assert client.get("/status").json()["redis"] == "unavailable"
        assert client.get("/status").json()["conversation_stream"] is None

    own_redis.start()
    with LocalTestClient(create_app(settings)):
        pass
    restored = redis.Redis.from_url(own_redis.url)
    keys = Keys(settings.redis_prefix)
    assert restored.get(keys.module(deploy_row["hash"])) == module
    assert stored_route(restored, keys, endpoint["id"]).deploy_id == deploy_row["id"]
    restored.close()


def test_status_reports_redis_ok(client: LocalTestClient) -> None:
    response = client.get("/status")

    assert response.status_code == 200
    status = response.json()
    assert (status["status"], status["service"], status["redis"]) == ("ok", "control-plane", "ok")
    assert (status["replay_batches_running"], status["replay_runs_in_flight"]) == (0, 0)
    assert (status["stream_clients"], status["stream_max_clients"]) == (0, 100)
