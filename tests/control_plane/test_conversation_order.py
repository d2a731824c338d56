"""Storage order: each stored conversation gets the next `seq`, never reused; migration 8 numbers old rows."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from control_plane.storage import conversations as store
from control_plane.storage.database import MIGRATIONS, open_database
from shared.timestamps import utc_now
from tests.control_plane.conversation_records import endpoint_record

SEQ_MIGRATION = 8
COLUMNS = (
    "id, created_at, finished_at, duration_ms, outcome, status, error, error_detail, endpoint_id, "
    "deploy_id, module_hash, request_processor_id, processor_version_id, replay_of, replay_mode, "
    "audit_items_dropped, ingested_at"
)


def rows(*ages_minutes: int) -> list[store.ConversationRows]:
    return [
        store.conversation_rows(endpoint_record(age=timedelta(minutes=age)), utc_now())
        for age in ages_minutes
    ]


async def test_seq_follows_storage_order_and_survives_deleting_everything(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "cp.sqlite3")
    try:
        first = rows(1, 5)  # the second one was created earlier but is stored later
        assert await store.store_conversations(db, first) == 2
        assert await store.store_conversations(db, first) == 0  # a redelivery takes no number
        listed = await store.list_conversations(db, limit=10)
        assert [(c.id, c.seq) for c in listed] == [
            (first[1].conversation[0], 2),
            (first[0].conversation[0], 1),
        ]

        assert await store.delete_oldest(db, 10) == 2  # retention emptied the table
        later = rows(0)
        await store.store_conversations(db, later)
        assert [c.seq for c in await store.list_conversations(db, limit=10)] == [3]
        assert await store.last_stored_seq(db) == 3
        after = await store.conversations_after(db, after=0, through=3, limit=10)
        assert [c.id for c in after] == [later[0].conversation[0]]
    finally:
        await db.close()


async def test_migration_numbers_existing_conversations_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    before_seq = SEQ_MIGRATION - 1
    for script in MIGRATIONS[:before_seq]:
        old.executescript(script)
    old.execute(f"PRAGMA user_version = {before_seq}")
    stored = rows(1, 3, 2)
    for conversation in stored:
        marks = ", ".join("?" * len(conversation.conversation))
        old.execute(f"INSERT INTO conversations ({COLUMNS}) VALUES ({marks})", conversation.conversation)
    old.commit()
    old.close()

    db = await open_database(path)
    try:
        listed = await store.list_conversations(db, limit=10)
        newest_first = [stored[0], stored[2], stored[1]]
        assert [c.id for c in listed] == [r.conversation[0] for r in newest_first]
        assert [c.seq for c in listed] == [3, 2, 1]
        assert await store.last_stored_seq(db) == 3
    finally:
        await db.close()


async def test_a_batch_with_repeated_and_stored_conversations_numbers_each_new_one_once(
    tmp_path: Path,
) -> None:
    """The batched store (one statement per kind of row, not per conversation): an id twice in a
    batch, or stored by an earlier batch, is stored once with its items and takes one number."""
    db = await open_database(tmp_path / "cp.sqlite3")
    try:
        earlier, again, fresh = rows(1, 2, 3)
        assert await store.store_conversations(db, [earlier]) == 1
        assert await store.store_conversations(db, [again, earlier, fresh, again]) == 2
        listed = await store.list_conversations(db, limit=10)
        assert [(c.id, c.seq) for c in listed] == [
            (fresh.conversation[0], 3),
            (again.conversation[0], 2),
            (earlier.conversation[0], 1),
        ]
        assert await store.last_stored_seq(db) == 3
        for stored in (earlier, again, fresh):
            found = await store.get_conversation(db, stored.conversation[0])
            assert found is not None
            assert [item.id for item in found[1]] == [item[0] for item in stored.items]
    finally:
        await db.close()
