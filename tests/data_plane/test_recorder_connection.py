"""The runs' records go to Redis over a connection of the recorder's own, packed by hand: what lands
on the stream must be what `Redis.xadd` wrote, in order, and a connection Redis dropped must be
replaced without sending the record to the outbox. Real Redis, real outbox on disk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from data_plane.audit import ConversationRecorder
from data_plane.outbox import DiskOutbox
from shared.conversations import STREAM_FIELD
from shared.keys import Keys
from shared.redis import connect
from tests.control_plane.conversation_records import endpoint_record


@pytest.fixture
def sync_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
async def recorder(redis_url: str, key_prefix: str, tmp_path: Path) -> AsyncIterator[ConversationRecorder]:
    client = await connect(redis_url)  # the data plane's client: retries on a broken connection
    recorder = ConversationRecorder(
        client,
        Keys(key_prefix),
        DiskOutbox(tmp_path / "outbox", max_bytes=1 << 20),
        plane_id="plane-a",
        stream_max_length=1000,
        record_timeout_ms=2000,
    )
    yield recorder
    await recorder.close()
    await client.aclose()


async def test_records_on_the_stream_are_as_redis_xadd_writes_them_in_order(
    recorder: ConversationRecorder, sync_client: redis.Redis, key_prefix: str, redis_url: str
) -> None:
    keys = Keys(key_prefix)
    records = [endpoint_record(body=f"run {n}".encode()) for n in range(5)]
    await asyncio.gather(*(recorder.record(record) for record in records))  # batched together
    reference = aioredis.Redis.from_url(redis_url)
    await reference.xadd(f"{keys.conversations}:ref", {STREAM_FIELD: records[0].pack()}, maxlen=1000)
    await reference.aclose()

    stream = sync_client.xrange(keys.conversations)
    assert [fields for _, fields in stream] == [{STREAM_FIELD: record.pack()} for record in records]
    assert stream[0][1] == sync_client.xrange(f"{keys.conversations}:ref")[0][1]
    assert len(recorder.outbox) == 0


async def test_a_connection_redis_dropped_is_replaced_and_the_record_still_reaches_redis(
    recorder: ConversationRecorder, sync_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    first, second = endpoint_record(), endpoint_record()
    await recorder.record(first)
    assert sync_client.client_kill_filter(_type="normal", skipme=True) >= 1  # the recorder's, among others

    await recorder.record(second)

    assert len(recorder.outbox) == 0, "retried on a fresh connection, not kept in the outbox"
    assert [fields[STREAM_FIELD] for _, fields in sync_client.xrange(keys.conversations)] == [
        first.pack(),
        second.pack(),
    ]


async def test_an_error_answer_sends_the_batch_to_the_outbox_and_the_connection_stays_usable(
    recorder: ConversationRecorder, sync_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    sync_client.set(keys.conversations, b"not a stream: XADD answers WRONGTYPE")
    refused = [endpoint_record() for _ in range(3)]
    await asyncio.gather(*(recorder.record(record) for record in refused))
    assert len(recorder.outbox) == 3

    sync_client.delete(keys.conversations)
    await recorder.drained()
    later = endpoint_record()
    await recorder.record(later)  # over the same connection: every error answer was read
    assert len(recorder.outbox) == 0
    stored = [fields[STREAM_FIELD] for _, fields in sync_client.xrange(keys.conversations)]
    assert sorted(stored[:3]) == sorted(record.pack() for record in refused)
    assert stored[3] == later.pack()
