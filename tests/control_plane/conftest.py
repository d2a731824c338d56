"""Fixtures for control-plane component tests: settings on a tmp data dir, the app in-process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from control_plane.app import create_app
from control_plane.settings import Settings
from shared.content_hash import content_hash
from shared.events import EndpointRoute
from shared.keys import Keys
from tests.control_plane.local_client import LocalTestClient

PUBLIC_URL = "http://data-plane.test:4000"


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, key_prefix: str) -> Settings:
    # A short ack timeout: tests that subscribe to events count as receivers that never ack.
    return Settings(
        data_dir=tmp_path / "data",
        redis_url=redis_url,
        redis_prefix=key_prefix,
        public_url=PUBLIC_URL,
        deploy_ack_timeout_ms=200,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[LocalTestClient]:
    with LocalTestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    return Keys(key_prefix)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def create_endpoint(client: LocalTestClient, name: str = "my-endpoint") -> dict[str, Any]:
    response = client.post("/endpoint", json={"name": name})
    assert response.status_code == 201, response.text
    endpoint: dict[str, Any] = response.json()
    return endpoint


def deploy(client: LocalTestClient, endpoint_id: str, module: bytes) -> dict[str, Any]:
    response = client.post(
        f"/endpoint/{endpoint_id}/deploy", content=module, headers={"content-type": "application/wasm"}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def assert_nothing_stored(
    client: LocalTestClient,
    redis_client: redis.Redis,
    keys: Keys,
    endpoint_id: str,
    good: dict[str, Any],
    refused: bytes,
) -> None:
    """The refused upload left no trace: same history and route, no module under its hash."""
    stored = client.get(f"/endpoint/{endpoint_id}").json()
    assert stored["deploy_history"] == [good]
    assert stored["active_deploy_id"] == good["id"]
    assert redis_client.get(keys.module(content_hash(refused))) is None
    assert stored_route(redis_client, keys, endpoint_id).deploy_id == good["id"]


def stored_route(redis_client: redis.Redis, keys: Keys, endpoint_id: str) -> EndpointRoute:
    """The route the control plane published for the endpoint; fails the test if there is none."""
    packed = redis_client.hget(keys.routes, endpoint_id)
    assert isinstance(packed, bytes), f"no route published for endpoint {endpoint_id}"
    return EndpointRoute.unpack(packed)


@contextmanager
def subscribed(redis_client: redis.Redis, keys: Keys) -> Iterator[redis.client.PubSub]:
    """Subscribe to the route-event channel; the subscription is live when the block starts."""
    pubsub = redis_client.pubsub()
    try:
        pubsub.subscribe(keys.events)
        confirmation = pubsub.get_message(timeout=5)
        assert confirmation is not None and confirmation["type"] == "subscribe"
        yield pubsub
    finally:
        pubsub.close()
