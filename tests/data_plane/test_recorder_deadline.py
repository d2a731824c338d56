"""The run whose record misses Redis announces its id as held before it answers.

Real Redis and a real outbox on disk. The stream key is made a string, so every XADD fails
(WRONGTYPE) while the rest of Redis answers: as a Redis that is slow for the record but
answers the control plane a moment later. The caller of such a run may read its
conversation at once; the control plane must then find the id held ("on its way", 503),
never unknown (404). The check reads Redis with a blocking client right after `record`
returns, so no other task of the recorder (the drainer) has run in between.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from data_plane.audit import ConversationRecorder
from data_plane.outbox import DiskOutbox
from shared.keys import Keys
from tests.control_plane.conversation_records import endpoint_record


@pytest.fixture
def sync_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
async def recorder(redis_url: str, key_prefix: str, tmp_path: Path) -> AsyncIterator[ConversationRecorder]:
    client = aioredis.Redis.from_url(redis_url)
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


async def test_a_record_that_misses_redis_has_its_id_held_before_the_run_answers(
    recorder: ConversationRecorder, sync_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    sync_client.set(keys.conversations, b"not a stream: every XADD fails")
    record = endpoint_record()

    await recorder.record(record)

    assert len(recorder.outbox) == 1, "the record is in the outbox"
    assert sync_client.get(keys.held_conversation(record.id)) == b"plane-a"
    assert 0 < sync_client.ttl(keys.held_conversation(record.id)) <= 900

    sync_client.delete(keys.conversations)  # Redis takes records again: the drainer writes it
    await recorder.drained()
    assert [entry_id for entry_id, _ in sync_client.xrange(keys.conversations)], "the record is on the stream"
    assert sync_client.get(keys.held_conversation(record.id)) is None, "its held id is gone"
