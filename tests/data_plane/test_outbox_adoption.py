"""Adopting outboxes no worker owns: which directories, only unlocked ones, in order, removed after.

Real files and a real Redis; the whole story with real processes (a data plane restarted with
another worker count) is `tests/e2e/test_outbox_adoption.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from data_plane.outbox import DiskOutbox, outbox_directory, outbox_root
from data_plane.outbox_adoption import OutboxAdoption, orphaned_outboxes
from data_plane.settings import Settings, worker_plane_ids
from shared.conversations import STREAM_FIELD
from shared.keys import Keys

BASE = "edge:4000"


def make_outboxes(data_dir: Path, *plane_ids: str) -> None:
    for plane_id in plane_ids:
        outbox_directory(data_dir, plane_id).mkdir(parents=True)


def test_orphans_are_the_planes_of_this_plane_id_that_no_current_worker_has(tmp_path: Path) -> None:
    make_outboxes(tmp_path, BASE, f"{BASE}/0", f"{BASE}/1", f"{BASE}/2", f"{BASE}/3")
    make_outboxes(tmp_path, f"{BASE}0", f"{BASE}/x", "other:4000", "other:4000/1")
    (outbox_root(tmp_path) / "stray-file").write_text("not a directory")

    def orphans(workers: int) -> set[str]:
        found = orphaned_outboxes(tmp_path, BASE, worker_plane_ids(BASE, workers))
        return {path.name for path in found}

    assert orphans(2) == {"edge%3A4000", "edge%3A4000%2F2", "edge%3A4000%2F3"}
    assert orphans(1) == {"edge%3A4000%2F0", "edge%3A4000%2F1", "edge%3A4000%2F2", "edge%3A4000%2F3"}
    assert orphans(4) == {"edge%3A4000"}
    assert orphaned_outboxes(tmp_path / "nothing-here", BASE, (BASE,)) == []


def test_a_worker_knows_its_siblings_plane_ids() -> None:
    settings = Settings(plane_id=BASE, base_plane_id=BASE, workers=3)
    assert settings.for_worker(1).worker_plane_ids == (f"{BASE}/0", f"{BASE}/1", f"{BASE}/2")
    assert settings.for_worker(1).base_plane_id == BASE
    assert Settings(plane_id=BASE).worker_plane_ids == (BASE,)


def adoption_by_worker(client: aioredis.Redis, keys: Keys, data_dir: Path, plane_id: str) -> OutboxAdoption:
    """The adoption of worker `plane_id` of a data plane of two workers."""
    return OutboxAdoption(
        client,
        keys,
        data_dir=data_dir,
        base_plane_id=BASE,
        worker_plane_ids=worker_plane_ids(BASE, 2),
        plane_id=plane_id,
        max_bytes=1 << 20,
        stream_max_length=10_000,
        record_timeout_ms=1000,
    )


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_a_locked_outbox_is_left_alone_and_adopted_once_released(
    tmp_path: Path, client: aioredis.Redis, redis_url: str, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    gone_worker = outbox_directory(tmp_path, f"{BASE}/3")
    records = [(str(uuid.uuid4()), f"record {number}".encode()) for number in range(5)]
    still_running = DiskOutbox(gone_worker, max_bytes=1 << 20)  # a worker of the old count, stopping
    await still_running.append(records[:3])
    await still_running.append(records[3:])
    adoption = adoption_by_worker(client, keys, tmp_path, f"{BASE}/0")
    sync_client = redis.Redis.from_url(redis_url)
    try:
        assert await adoption.adopt_orphans() == 0
        assert sync_client.xlen(keys.conversations) == 0
        assert gone_worker.exists()

        await still_running.close()
        assert await adoption.adopt_orphans() == 1

        written = [fields[STREAM_FIELD] for _, fields in sync_client.xrange(keys.conversations)]
        assert written == [packed for _, packed in records], "each record once, oldest first"
        assert not gone_worker.exists(), "the drained outbox is removed"
        assert not sync_client.keys(f"{key_prefix}:held:*"), "no held id is left behind"
        assert (adoption.adopted, adoption.held) == (1, 0)
        assert await adoption.adopt_orphans() == 0
    finally:
        sync_client.close()


async def test_when_start_returns_every_adopted_run_is_held_or_on_the_stream(
    tmp_path: Path, client: aioredis.Redis, redis_url: str, key_prefix: str
) -> None:
    """A worker serves once `start` returns: a read of a run an orphan holds must then find it
    held (503 "on its way") or stored, never neither (404)."""
    keys = Keys(key_prefix)
    records = [(str(uuid.uuid4()), f"record {number}".encode()) for number in range(3)]
    left = DiskOutbox(outbox_directory(tmp_path, f"{BASE}/2"), max_bytes=1 << 20)
    await left.append(records)
    await left.close()
    adoption = adoption_by_worker(client, keys, tmp_path, f"{BASE}/1")
    sync_client = redis.Redis.from_url(redis_url)
    try:
        await adoption.start()
        streamed = {fields[STREAM_FIELD] for _, fields in sync_client.xrange(keys.conversations)}
        for conversation_id, packed in records:
            held = sync_client.get(keys.held_conversation(conversation_id))
            assert held == f"{BASE}/1".encode() or packed in streamed, conversation_id
    finally:
        await adoption.close()
        sync_client.close()
