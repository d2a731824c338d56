"""Reading the conversation stream when Redis's answer to a read is lost on the way.

`XREADGROUP ... >` moves the entries it returns to the reader's pending list as it runs;
if its answer is then lost (Redis killed between fsyncing that and writing the reply, or
the connection cut), the entries are pending at this control plane and nobody has seen
them. A client that silently sends the read again gets the next entries: the lost ones
would wait for the claim timeout (FFAAS_INGEST_CLAIM_IDLE_MS, 30 s) while later runs are
stored. This was the fault-injection test's loss of runs answered just before Redis was
SIGKILLed (`tests/e2e/test_fault_injection.py`).

The proxy loses exactly one answer; Redis itself stays up. Nothing here asserts on time:
a later entry being stored is the event after which the earlier one must be stored too.
Behind that, the upkeep hands over any entry pending at this control plane that no task
holds (driven directly, its idle threshold faked to zero).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest
import redis
import redis.asyncio as aioredis

from control_plane import stream_upkeep
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
    publish,
)
from tests.control_plane.local_client import LocalTestClient
from tests.redis_proxy import RedisProxy

NEW_ENTRIES_READ = (b"XREADGROUP", b"$1\r\n>\r\n")
"""A read of entries no consumer has read yet (`>`), as it goes over the wire."""


@pytest.fixture
def proxy(redis_url: str) -> Iterator[RedisProxy]:
    proxy = RedisProxy(redis_url)
    yield proxy
    proxy.close()


def stored(settings: Settings, conversation_id: str) -> bool:
    """In the SQLite file (read directly: a GET would catch up with the stream and hide the fault)."""
    if not settings.database_path.exists():
        return False
    connection = sqlite3.connect(settings.database_path, timeout=5.0)
    try:
        found = connection.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
    except sqlite3.OperationalError:  # not migrated yet
        return False
    finally:
        connection.close()
    return found is not None


def test_entries_whose_read_answer_was_lost_are_stored_before_later_ones(
    settings: Settings, proxy: RedisProxy, redis_client: redis.Redis, keys: Keys
) -> None:
    lost = endpoint_record()
    publish(redis_client, keys, lost)
    proxy.lose_answer_to(*NEW_ENTRIES_READ)

    with LocalTestClient(create_app(replace(settings, redis_url=proxy.url))):
        assert proxy.lost.wait(timeout=30), "the control plane never read the stream"
        later = endpoint_record()
        publish(redis_client, keys, later)
        eventually(lambda: stored(settings, later.id))

        assert stored(settings, lost.id), (
            "an entry delivered by a read whose answer was lost is left pending, unstored, while a "
            "later entry was stored"
        )


@pytest.fixture
async def stream(redis_url: str, keys: Keys) -> AsyncIterator[ConversationStream]:
    client = aioredis.Redis.from_url(redis_url)
    yield ConversationStream(client, keys, "this-control-plane")
    await client.aclose()


async def test_the_upkeep_hands_over_entries_pending_here_that_no_task_holds(
    stream: ConversationStream, redis_client: redis.Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_upkeep, "ORPHAN_IDLE_MS", 0)  # instead of waiting a second
    create_group(redis_client, keys)
    orphan, held = (publish(redis_client, keys, endpoint_record()) for _ in range(2))
    deliver(redis_client, keys, "this-control-plane", ack=False)
    elsewhere = publish(redis_client, keys, endpoint_record())
    deliver(redis_client, keys, "another-control-plane", ack=False)
    handed: list[Entry] = []

    async def hand_over(entries: list[Entry]) -> None:
        handed.extend(entries)

    upkeep = StreamUpkeep(
        stream, hand_over, held={held}, claim_idle_ms=30_000, max_stream_bytes=1 << 30, batch=500
    )
    await upkeep.take_up_orphans()

    assert [entry.id for entry in handed] == [orphan], f"held {held!r}, at another consumer {elsewhere!r}"
    assert handed[0].fields is not None, "handed over with its record"
    assert upkeep.stats.orphans == 1
