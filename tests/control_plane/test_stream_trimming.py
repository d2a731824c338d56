"""The conversation stream holds only what is not stored yet; a byte bound is the safety net.

Real Redis throughout. The upkeep trims every second in the running app; the tests that
need an exact state drive `ConversationStream` and `StreamUpkeep` directly.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis

from control_plane.app import create_app
from control_plane.conversation_stream import ConversationStream, Entry
from control_plane.settings import Settings
from control_plane.stream_upkeep import StreamUpkeep
from shared.keys import Keys
from tests.control_plane.conversation_records import (
    create_group,
    deliver,
    endpoint_record,
    eventually,
    expected_conversation,
    publish,
    services_of,
)
from tests.control_plane.local_client import LocalTestClient


def stream_ids(client: redis.Redis, keys: Keys) -> list[bytes]:
    return [entry_id for entry_id, _ in client.xrange(keys.conversations)]


def test_after_ingest_the_stream_holds_only_what_is_not_acknowledged(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    records = [endpoint_record() for _ in range(20)]
    for record in records:
        publish(redis_client, keys, record)
    assert client.get(f"/conversation/{records[-1].id}").status_code == 200

    eventually(lambda: redis_client.xlen(keys.conversations) == 0)

    assert all(client.get(f"/conversation/{r.id}").json() == expected_conversation(r) for r in records)
    status = client.get("/status").json()
    assert (status["conversation_stream"]["length"], status["conversation_stream"]["pending"]) == (0, 0)
    assert status["ingest"]["trimmed"] == len(records)
    assert status["redis_used_memory"] > 0


def test_a_pending_entry_is_never_trimmed(settings: Settings, redis_client: redis.Redis, keys: Keys) -> None:
    create_group(redis_client, keys)
    for _ in range(2):
        publish(redis_client, keys, endpoint_record())
    deliver(redis_client, keys, "other-control-plane", ack=True)
    held = endpoint_record()
    publish(redis_client, keys, held)
    [held_id] = deliver(redis_client, keys, "slow-control-plane", ack=False)
    later = [publish(redis_client, keys, endpoint_record()) for _ in range(2)]

    with LocalTestClient(create_app(settings)) as client:
        # This control plane stores the later two; the held one stays pending at the slow one.
        eventually(lambda: services_of(client).ingester.writer.stats.stored == 2)
        eventually(lambda: stream_ids(redis_client, keys) == [held_id, *later])

        status = client.get("/status").json()["conversation_stream"]
        assert (status["length"], status["pending"]) == (3, 1), status
        redis_client.xack(keys.conversations, keys.ingest_group, held_id)  # the slow one stored it
        eventually(lambda: stream_ids(redis_client, keys) == [])


@pytest.fixture
async def stream(redis_url: str, keys: Keys) -> AsyncIterator[ConversationStream]:
    client = aioredis.Redis.from_url(redis_url)
    yield ConversationStream(client, keys, "this-control-plane")
    await client.aclose()


async def test_trimming_never_passes_the_last_delivered_entry(
    stream: ConversationStream, redis_client: redis.Redis, keys: Keys
) -> None:
    create_group(redis_client, keys)
    for _ in range(3):
        publish(redis_client, keys, endpoint_record())
    deliver(redis_client, keys, "other", ack=True)
    unread = [publish(redis_client, keys, endpoint_record()) for _ in range(2)]

    trimmed = await stream.trim_acknowledged()

    assert trimmed == 3
    assert stream_ids(redis_client, keys) == unread


async def test_over_the_byte_bound_the_oldest_entries_go_even_unread_and_are_counted(
    stream: ConversationStream, redis_client: redis.Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    create_group(redis_client, keys)
    ids = [publish(redis_client, keys, endpoint_record(body=b"x" * 2000)) for _ in range(60)]
    max_bytes = 40_000
    assert redis_client.memory_usage(keys.conversations) > max_bytes

    async def hand_over(entries: list[Entry]) -> None:
        raise AssertionError("nothing is pending anywhere: nothing to take over")

    upkeep = StreamUpkeep(
        stream, hand_over, held=set(), claim_idle_ms=30_000, max_stream_bytes=max_bytes, batch=500
    )
    with caplog.at_level(logging.ERROR, logger="ffaas.control_plane.stream_upkeep"):
        await upkeep.trim()

    kept = stream_ids(redis_client, keys)
    assert upkeep.stats.lost_to_byte_bound == len(ids) - len(kept) > 0
    assert kept == ids[len(ids) - len(kept) :], "the newest entries are kept"
    assert redis_client.memory_usage(keys.conversations) <= max_bytes
    assert "(FFAAS_CONVERSATION_STREAM_MAX_BYTES)" in caplog.text
    assert f"removed its {upkeep.stats.lost_to_byte_bound} oldest entries" in caplog.text
