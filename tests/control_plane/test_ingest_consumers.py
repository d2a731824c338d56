"""Consumers of the conversation stream: stable names, catch-up across consumers, gone ones removed.

The claim idle time stays at its default (30 s) unless a test is about taking over, so
nothing here can pass by waiting for XAUTOCLAIM.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import redis
import redis.asyncio as aioredis

from control_plane.app import create_app
from control_plane.conversation_stream import ConversationStream
from control_plane.settings import Settings
from shared.keys import Keys
from tests.control_plane.conversation_records import (
    endpoint_record,
    eventually,
    expected_conversation,
    pending_count,
    publish,
    services_of,
)
from tests.control_plane.local_client import LocalTestClient


def read_without_ack(client: redis.Redis, keys: Keys, consumer: str) -> None:
    """What a control plane does just before it is killed: entries delivered to it, not acknowledged."""
    with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: it exists already
        client.xgroup_create(keys.conversations, keys.ingest_group, id="0", mkstream=True)
    client.xreadgroup(keys.ingest_group, consumer, {keys.conversations: ">"}, count=100)


def read_and_ack(client: redis.Redis, keys: Keys, consumer: str) -> None:
    """A consumer that stored what it read (Redis creates a consumer only when it is given entries)."""
    read = client.xreadgroup(keys.ingest_group, consumer, {keys.conversations: ">"}, count=100)
    client.xack(
        keys.conversations, keys.ingest_group, *[entry_id for _, entries in read for entry_id, _ in entries]
    )


def consumers(client: redis.Redis, keys: Keys) -> dict[str, int]:
    """Consumer name -> its pending entries."""
    return {
        info["name"].decode(): int(info["pending"])
        for info in client.xinfo_consumers(keys.conversations, keys.ingest_group)
    }


def test_a_get_finds_a_conversation_pending_at_another_consumer(
    settings: Settings, redis_client: redis.Redis, keys: Keys
) -> None:
    record = endpoint_record()
    publish(redis_client, keys, record)
    read_without_ack(redis_client, keys, "killed-control-plane")
    assert consumers(redis_client, keys)["killed-control-plane"] == 1

    with LocalTestClient(create_app(settings)) as client:
        response = client.get(f"/conversation/{record.id}")

        assert response.status_code == 200, response.text
        assert response.json() == expected_conversation(record)
        assert pending_count(redis_client, keys) == 0


def test_a_restarted_control_plane_takes_up_its_own_pending_entries_at_once(
    settings: Settings, redis_client: redis.Redis, keys: Keys
) -> None:
    named = replace(settings, control_plane_id="control-plane-a")
    records = [endpoint_record() for _ in range(3)]
    for record in records:
        publish(redis_client, keys, record)
    read_without_ack(redis_client, keys, "control-plane-a")

    with LocalTestClient(create_app(named)) as client:
        # No GET: only the reader, re-reading its own pending entries at start, can store them.
        eventually(lambda: services_of(client).ingester.writer.stats.stored == len(records))

        assert services_of(client).ingester.upkeep.stats.claimed == 0
        assert pending_count(redis_client, keys) == 0
        assert client.get("/status").json()["ingest"]["consumer"] == "control-plane-a"


def test_the_consumer_name_defaults_to_host_and_port() -> None:
    settings = Settings.from_environ({"FFAAS_CONTROL_PLANE_PORT": "3111"})

    assert settings.consumer_name == f"{socket.gethostname()}:3111"
    assert Settings.from_environ({"FFAAS_CONTROL_PLANE_ID": "cp-east-1"}).consumer_name == "cp-east-1"


def test_consumers_that_are_gone_are_removed_and_logged(
    settings: Settings, redis_client: redis.Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    left_pending = endpoint_record()
    publish(redis_client, keys, left_pending)
    read_without_ack(redis_client, keys, "crashed-holding-one")
    publish(redis_client, keys, endpoint_record())
    read_and_ack(redis_client, keys, "stopped-cleanly")
    caplog.set_level(logging.INFO, logger="ffaas.control_plane.stream_upkeep")

    with LocalTestClient(create_app(replace(settings, ingest_claim_idle_ms=50))) as client:
        own = services_of(client).ingester.consumer
        eventually(lambda: set(consumers(redis_client, keys)) == {own})

        # The entry the crashed one held was taken over and stored before its consumer went.
        assert client.get(f"/conversation/{left_pending.id}").json() == expected_conversation(left_pending)
        assert services_of(client).ingester.upkeep.stats.consumers_removed == 2
    removals = " ".join(r.getMessage() for r in caplog.records if "removed consumer" in r.getMessage())
    assert "crashed-holding-one" in removals and "stopped-cleanly" in removals


@pytest.fixture
async def stream(redis_url: str, keys: Keys) -> AsyncIterator[ConversationStream]:
    client = aioredis.Redis.from_url(redis_url)
    yield ConversationStream(client, keys, "me")
    await client.aclose()


async def test_a_consumer_holding_pending_entries_is_never_removed(
    stream: ConversationStream, redis_client: redis.Redis, keys: Keys
) -> None:
    publish(redis_client, keys, endpoint_record())
    read_without_ack(redis_client, keys, "holding")
    publish(redis_client, keys, endpoint_record())
    read_and_ack(redis_client, keys, "empty")

    removed = await stream.forget_gone_consumers(idle_ms=-1)

    assert removed == ["empty"]
    assert consumers(redis_client, keys) == {"holding": 1}
