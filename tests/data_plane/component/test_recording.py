"""The data plane's outbox as `/status` shows it, and across a stop and start, with a real Redis
that is stopped and started again."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from data_plane.app import create_app
from data_plane.settings import Settings
from shared.keys import Keys
from tests.conftest import RedisServer
from tests.data_plane import guests
from tests.data_plane.component.conftest import Publisher
from tests.data_plane.component.test_conversations import records


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.workdir.mkdir()
    server.start()
    yield server
    server.stop()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """A wait for the drainer (background work), never the assertion."""
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_status_shows_the_outbox_and_what_its_bound_dropped(
    tmp_path: Path, own_redis: RedisServer, key_prefix: str
) -> None:
    publisher = Publisher(own_redis.url, Keys(key_prefix))
    endpoint_id = publisher.deploy(guests.prints(b"Content-Type: text/plain\n\nup"))
    settings = Settings(
        redis_url=own_redis.url, redis_prefix=key_prefix, data_dir=tmp_path / "data", outbox_max_bytes=3000
    )
    try:
        with TestClient(create_app(settings)) as client:
            own_redis.stop()
            ids = [client.get(f"/{endpoint_id}").headers["fh-conversation-id"] for _ in range(10)]
            status = client.get("/status").json()
            held, size, dropped = (
                status["conversation_outbox"],
                status["conversation_outbox_bytes"],
                status["conversation_outbox_dropped"],
            )
            assert 0 < held < 10 and held + dropped == 10, status
            assert 0 < size <= 3000, status
            own_redis.start()
            wait_for(lambda: client.get("/status").json()["conversation_outbox"] == 0, "the outbox to drain")
        recorded = records(own_redis.url, Keys(key_prefix))
        assert set(ids[-held:]) <= set(recorded), "the newest records are kept"
        assert not set(ids[:dropped]) & set(recorded), "the oldest were dropped"
    finally:
        publisher.client.close()


def test_records_held_at_a_stop_are_written_after_the_next_start(
    tmp_path: Path, own_redis: RedisServer, key_prefix: str
) -> None:
    publisher = Publisher(own_redis.url, Keys(key_prefix))
    endpoint_id = publisher.deploy(guests.prints(b"Content-Type: text/plain\n\nup"))
    settings = Settings(redis_url=own_redis.url, redis_prefix=key_prefix, data_dir=tmp_path / "data")
    try:
        with TestClient(create_app(settings)) as client:
            own_redis.stop()
            ids = [client.get(f"/{endpoint_id}").headers["fh-conversation-id"] for _ in range(3)]
        own_redis.start()
        with TestClient(create_app(settings)) as client:
            wait_for(lambda: client.get("/status").json()["conversation_outbox"] == 0, "the outbox to drain")
        assert set(ids) <= set(records(own_redis.url, Keys(key_prefix)))
    finally:
        publisher.client.close()
