"""The data plane in-process against a real Redis, with routes published the way the control plane does."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from data_plane.app import create_app
from data_plane.settings import Settings
from shared.content_hash import content_hash
from shared.events import EndpointRoute, RouteEvent
from shared.keys import Keys


class Publisher:
    """Publishes routes exactly as the control plane's publisher does (module bytes, route, event)."""

    def __init__(self, redis_url: str, keys: Keys) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.keys = keys

    def deploy(
        self, wasm: bytes, *, endpoint_id: str | None = None, env: dict[str, str] | None = None
    ) -> str:
        endpoint_id = endpoint_id or str(uuid.uuid4())
        module_hash = content_hash(wasm)
        self.client.set(self.keys.module(module_hash), wasm)
        route = EndpointRoute(endpoint_id, str(uuid.uuid4()), module_hash, env or {})
        self.client.hset(self.keys.routes, endpoint_id, route.pack())
        self.client.publish(self.keys.events, RouteEvent(uuid.uuid4().hex, endpoint_id).pack())
        return endpoint_id

    def delete(self, endpoint_id: str) -> str:
        event_id = uuid.uuid4().hex
        self.client.hdel(self.keys.routes, endpoint_id)
        self.client.publish(self.keys.events, RouteEvent(event_id, endpoint_id).pack())
        return event_id


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, key_prefix: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        redis_prefix=key_prefix,
        data_dir=tmp_path,
        plane_id="test-plane",
        run_timeout_ms=500,
        max_memory_bytes=4 << 20,
        max_request_bytes=100_000,
        max_response_bytes=100_000,
        max_log_bytes=1000,
        run_concurrency=8,
    )


@pytest.fixture
def publisher(redis_url: str, key_prefix: str) -> Iterator[Publisher]:
    publisher = Publisher(redis_url, Keys(key_prefix))
    yield publisher
    publisher.client.close()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client
