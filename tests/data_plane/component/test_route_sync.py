"""The route follower survives what it cannot read: versioned routes, unreadable records, bad events.

The data plane runs in-process against a real Redis; routes and events are written the
way the control plane's publisher writes them. A data plane acknowledges an event
(`Keys.acks`) once it serves the new state, so waiting on that list is the causal signal
that the follower has handled every event published before it.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgpack
import pytest
import redis
from starlette.testclient import TestClient

from data_plane.app import create_app
from data_plane.settings import Settings
from shared.content_hash import content_hash
from shared.events import EndpointRoute, ProcessorRoute, RouteEvent
from shared.keys import Keys
from tests.data_plane import guests
from tests.data_plane.component.conftest import Publisher

ACK_TIMEOUT_S = 10


def version(number: int) -> bytes:
    return guests.prints(f"Content-Type: text/plain\n\nversion {number}".encode())


def deploy_and_wait(publisher: Publisher, endpoint_id: str, wasm: bytes, **extra: Any) -> None:
    """Publish a route (with `extra` fields a newer control plane might add) and wait for the ack."""
    keys = publisher.keys
    module_hash = content_hash(wasm)
    publisher.client.set(keys.module(module_hash), wasm)
    route = EndpointRoute(endpoint_id, str(uuid.uuid4()), module_hash, {})
    publisher.client.hset(keys.routes, endpoint_id, with_fields(route.pack(), **extra))
    publish_and_wait(publisher.client, keys, RouteEvent(uuid.uuid4().hex, endpoint_id).pack())


def publish_and_wait(client: redis.Redis, keys: Keys, event: bytes) -> None:
    event_id = msgpack.unpackb(event)["event_id"]
    client.publish(keys.events, event)
    acked = client.blpop([keys.acks(event_id)], timeout=ACK_TIMEOUT_S)
    assert acked is not None, f"event {event_id} was not acknowledged within {ACK_TIMEOUT_S} s"


def with_fields(packed: bytes, **extra: Any) -> bytes:
    fields = msgpack.unpackb(packed)
    fields.update(extra)
    result: bytes = msgpack.packb(fields)
    return result


@pytest.fixture
def client(settings: Settings) -> Any:
    with TestClient(create_app(settings)) as client:
        yield client


def test_routes_with_fields_this_plane_does_not_know_are_served(
    client: TestClient, publisher: Publisher
) -> None:
    endpoint_id = str(uuid.uuid4())
    deploy_and_wait(publisher, endpoint_id, version(1), region="eu-west", weight=3)
    code = "function main(request) { return 'newer route'; }"
    processor_id = str(uuid.uuid4())
    code_hash = content_hash(code.encode())
    publisher.client.set(publisher.keys.processor_code(code_hash), code.encode())
    route = ProcessorRoute(processor_id, "newer", "js", "v8", code_hash).pack()
    publisher.client.hset(publisher.keys.processors, processor_id, with_fields(route, memory_class="large"))
    event = with_fields(RouteEvent(uuid.uuid4().hex, processor_id=processor_id).pack(), priority=1)
    publish_and_wait(publisher.client, publisher.keys, event)

    assert client.get(f"/{endpoint_id}").text == "version 1"
    assert client.get(f"/processor/{processor_id}/run").text == "newer route"
    status = client.get("/status").json()
    assert (status["route_sync"], status["route_sync_errors"]) == ("ok", 0), status


def test_an_event_the_follower_cannot_handle_makes_it_resync_not_die(
    client: TestClient, publisher: Publisher
) -> None:
    keys = publisher.keys
    unreadable_id = str(uuid.uuid4())
    publisher.client.hset(keys.processors, unreadable_id, msgpack.packb({"processor_id": unreadable_id}))
    publisher.client.publish(keys.events, RouteEvent(uuid.uuid4().hex, processor_id=unreadable_id).pack())
    publisher.client.publish(keys.events, b"\xc1 not an event at all")
    publisher.client.publish(keys.events, msgpack.packb({"event_id": 42}))

    # Still following: a deploy published after the bad events is served once acknowledged.
    endpoint_id = str(uuid.uuid4())
    deploy_and_wait(publisher, endpoint_id, version(2))

    assert client.get(f"/{endpoint_id}").text == "version 2"
    assert client.get(f"/processor/{unreadable_id}/run").status_code == 404
    status = client.get("/status").json()
    assert status["route_sync"] == "ok", status
    assert status["route_sync_errors"] >= 3, status
    assert f"processor {unreadable_id}" in (status["route_sync_last_error"] or ""), status


def test_an_unreadable_route_keeps_serving_its_previous_version(
    client: TestClient, publisher: Publisher
) -> None:
    endpoint_id = str(uuid.uuid4())
    deploy_and_wait(publisher, endpoint_id, version(1))
    newer_layout = with_fields(EndpointRoute(endpoint_id, "d2", content_hash(version(2)), {}).pack(), v=2)
    publisher.client.set(publisher.keys.module(content_hash(version(2))), version(2))
    publisher.client.hset(publisher.keys.routes, endpoint_id, newer_layout)
    publisher.client.publish(publisher.keys.events, RouteEvent(uuid.uuid4().hex, endpoint_id).pack())
    other_id = str(uuid.uuid4())

    deploy_and_wait(publisher, other_id, version(3))

    assert client.get(f"/{endpoint_id}").text == "version 1"
    assert client.get(f"/{other_id}").text == "version 3"
    status = client.get("/status").json()
    assert status["route_sync"] == "ok", status
    assert "layout v2, newer than this plane reads (v1)" in status["route_sync_last_error"], status
