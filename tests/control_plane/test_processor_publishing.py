"""Publishing processors to Redis: code by hash, the route, a RouteEvent naming the processor, acks,
deletion, startup reconcile and Redis outages."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from control_plane.app import create_app
from control_plane.settings import Settings
from shared.content_hash import content_hash
from shared.events import ProcessorRoute, RouteEvent
from shared.keys import Keys
from tests.conftest import RedisServer
from tests.control_plane.conftest import subscribed
from tests.control_plane.local_client import LocalTestClient
from tests.control_plane.test_processors import create_processor, processor_body
from tests.control_plane.test_publishing import FakeDataPlane

FIRST = "function main(request) {\n  return 1;\n}\n"
SECOND = "function main(request) {\n  return 2;\n}\n"


def stored_processor_route(redis_client: redis.Redis, keys: Keys, processor_id: str) -> ProcessorRoute:
    packed = redis_client.hget(keys.processors, processor_id)
    assert isinstance(packed, bytes), f"no route published for processor {processor_id}"
    return ProcessorRoute.unpack(packed)


def next_event(events: redis.client.PubSub) -> RouteEvent:
    message = events.get_message(ignore_subscribe_messages=True, timeout=5)
    assert message is not None, "no route event was published"
    return RouteEvent.unpack(message["data"])


def test_create_publishes_code_route_and_an_event_naming_the_processor(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    with subscribed(redis_client, keys) as events:
        created = create_processor(client, name="one", language="javascript", runtime="wasm", code=FIRST)
        event = next_event(events)

    route = stored_processor_route(redis_client, keys, created["id"])
    assert route == ProcessorRoute(
        created["id"], "one", "js", "wasm", content_hash(FIRST.encode()), created["active_version_id"]
    )
    assert redis_client.get(keys.processor_code(route.code_hash)) == FIRST.encode()
    assert (event.processor_id, event.endpoint_id) == (created["id"], "")
    assert redis_client.exists(keys.acks(event.event_id)) == 0


def test_update_publishes_the_new_code_hash(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    created = create_processor(client, code=FIRST)
    old_hash = stored_processor_route(redis_client, keys, created["id"]).code_hash

    with subscribed(redis_client, keys) as events:
        response = client.put(
            f"/admin/processor/{created['id']}", json=processor_body(name="two", code=SECOND)
        )
        event = next_event(events)

    assert response.status_code == 200
    route = stored_processor_route(redis_client, keys, created["id"])
    assert route.code_hash == content_hash(SECOND.encode()) != old_hash
    assert route.name == "two"
    assert route.version_id == response.json()["active_version_id"] != created["active_version_id"]
    assert redis_client.get(keys.processor_code(route.code_hash)) == SECOND.encode()
    assert event.processor_id == created["id"]


def test_delete_removes_the_route_and_announces_it(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    created = create_processor(client)
    kept = create_processor(client, name="kept")

    with subscribed(redis_client, keys) as events:
        assert client.delete(f"/admin/processor/{created['id']}").status_code == 204
        event = next_event(events)

    assert redis_client.hexists(keys.processors, created["id"]) == 0
    assert redis_client.hexists(keys.processors, kept["id"]) == 1
    assert event.processor_id == created["id"]


def test_the_save_answers_only_after_the_data_plane_acked(
    settings: Settings, redis_url: str, keys: Keys
) -> None:
    plane = FakeDataPlane(redis_url, keys, delay_s=0.3)
    plane.start()
    assert plane.subscribed.wait(5)
    try:
        with LocalTestClient(create_app(replace(settings, deploy_ack_timeout_ms=10_000))) as client:
            created = create_processor(client)

            # The fake data plane acks 0.3 s after the event; without waiting, the response beats it.
            assert [event.processor_id for event in plane.acked if event.endpoint_id != "*"] == [
                created["id"]
            ]
    finally:
        plane.stopping.set()
        plane.join(5)


def test_startup_reconcile_refills_a_flushed_redis(
    settings: Settings, redis_client: redis.Redis, keys: Keys, key_prefix: str
) -> None:
    with LocalTestClient(create_app(settings)) as client:
        first = create_processor(client, name="first", code=FIRST)
        second = create_processor(client, name="second", language="ts", runtime="wasm", code=SECOND)
    for key in redis_client.scan_iter(f"{key_prefix}:*"):
        redis_client.delete(key)
    redis_client.hset(keys.processors, "gone", ProcessorRoute("gone", "gone", "js", "v8", "0" * 32).pack())

    with subscribed(redis_client, keys) as events, LocalTestClient(create_app(settings)):
        event = next_event(events)

    code_hash = content_hash(FIRST.encode())
    second_hash = content_hash(SECOND.encode())
    assert redis_client.hgetall(keys.processors) == {
        first["id"].encode(): ProcessorRoute(
            first["id"], "first", "js", "v8", code_hash, first["active_version_id"]
        ).pack(),
        second["id"].encode(): ProcessorRoute(
            second["id"], "second", "ts", "wasm", second_hash, second["active_version_id"]
        ).pack(),
    }
    assert redis_client.get(keys.processor_code(code_hash)) == FIRST.encode()
    assert redis_client.get(keys.processor_code(second_hash)) == SECOND.encode()
    assert event.endpoint_id == "*"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, so stopping it disturbs no other test."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def test_a_save_while_redis_is_down_is_503_stays_stored_and_is_reconciled(
    settings: Settings, own_redis: RedisServer
) -> None:
    settings = replace(settings, redis_url=own_redis.url)
    with LocalTestClient(create_app(settings)) as client:
        created = create_processor(client, code=FIRST)
        own_redis.stop()

        response = client.put(f"/admin/processor/{created['id']}", json=processor_body(code=SECOND))

        assert response.status_code == 503
        assert response.json() == {
            "code": 503,
            "message": f"update of processor {created['id']} is stored but could not be published: "
            "Redis unavailable (FFAAS_REDIS_URL); retry later",
        }
        assert response.headers["retry-after"] == "1"
        assert client.get(f"/admin/processor/{created['id']}").json()["code"] == SECOND

    own_redis.start()
    with LocalTestClient(create_app(settings)):
        pass
    restored = redis.Redis.from_url(own_redis.url)
    keys = Keys(settings.redis_prefix)
    route = stored_processor_route(restored, keys, created["id"])
    assert route.code_hash == content_hash(SECOND.encode())
    assert restored.get(keys.processor_code(route.code_hash)) == SECOND.encode()
    restored.close()
