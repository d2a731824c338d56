"""A write that fails (a full disk, a failed COMMIT) leaves the database usable, with no restart.

Real SQLite files: "full" is `PRAGMA max_page_count` lowered to the file's current size at
run time (SQLite then fails writes with SQLITE_FULL, as on a full disk), and raised again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from control_plane.storage.database import Database, open_database
from shared.keys import Keys
from tests.control_plane.conversation_records import (
    call_in_app,
    endpoint_record,
    eventually,
    expected_conversation,
    pending_count,
    publish,
    services_of,
)
from tests.control_plane.local_client import LocalTestClient

BIG_BODY = b"x" * 60_000
"""Far more than the pages left once the database is "full"."""


async def set_full(db: Database, full: bool) -> None:
    """Cap the database at its current size (full) or lift the cap."""
    async with db.reading() as connection:
        async with connection.execute("PRAGMA page_count") as cursor:
            row = await cursor.fetchone()
        assert row is not None
        await connection.execute(f"PRAGMA max_page_count = {int(row[0]) if full else 1 << 30}")


def test_a_full_database_answers_503_then_recovers_without_a_restart_and_loses_nothing(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    db = services_of(client).db
    first = endpoint_record()
    publish(redis_client, keys, first)
    assert client.get(f"/conversation/{first.id}").status_code == 200
    call_in_app(client, lambda: set_full(db, True))
    while_full = [endpoint_record(body=BIG_BODY) for _ in range(3)]
    for record in while_full:
        publish(redis_client, keys, record)

    refused = client.get(f"/conversation/{while_full[0].id}")

    assert refused.status_code == 503, refused.text
    assert refused.json()["message"] == (
        f"conversation {while_full[0].id} is not stored yet and cannot be looked for now: "
        "storing conversations is failing: OperationalError: database or disk is full; retry later"
    )
    assert refused.headers["retry-after"] == "1"
    assert pending_count(redis_client, keys) == len(while_full)  # read, not acknowledged

    call_in_app(client, lambda: set_full(db, False))
    after = endpoint_record()
    publish(redis_client, keys, after)

    eventually(lambda: client.get(f"/conversation/{after.id}").status_code == 200)
    for record in [first, *while_full, after]:
        assert client.get(f"/conversation/{record.id}").json() == expected_conversation(record)
    assert pending_count(redis_client, keys) == 0
    status = client.get("/status").json()
    assert "database or disk is full" in status["ingest"]["last_error"]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(tmp_path / "control_plane.sqlite3")
    yield database
    await database.close()


async def test_a_failed_commit_rolls_back_and_the_next_write_works(db: Database) -> None:
    """A deferred foreign key fails at COMMIT, which SQLite leaves open: the transaction must end."""
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY constraint failed"):
        async with db.transaction() as connection:
            await connection.execute("PRAGMA defer_foreign_keys = ON")
            await connection.execute(
                "INSERT INTO deploys (id, endpoint_id, module_hash, created_at) "
                "VALUES ('d1', 'no such endpoint', 'no such module', '2024-01-01T00:00:00.000000Z')"
            )

    async with db.transaction() as connection:
        await connection.execute(
            "INSERT INTO endpoints (id, name, created_at) "
            "VALUES ('e1', 'after', '2024-01-01T00:00:00.000000Z')"
        )
    async with db.reading() as connection, connection.execute("SELECT id FROM endpoints") as cursor:
        assert [row[0] for row in await cursor.fetchall()] == ["e1"]
    async with db.reading() as connection, connection.execute("SELECT COUNT(*) FROM deploys") as cursor:
        assert await cursor.fetchone() == (0,)


async def test_a_write_on_a_full_database_raises_its_own_error_and_the_next_one_works(db: Database) -> None:
    await set_full(db, True)
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
        async with db.transaction() as connection:
            await connection.execute(
                "INSERT INTO modules (hash, bytes, size, created_at) VALUES ('h', ?, 1, 't')", (BIG_BODY,)
            )

    await set_full(db, False)
    async with db.transaction() as connection:
        await connection.execute(
            "INSERT INTO modules (hash, bytes, size, created_at) VALUES ('h', ?, 1, 't')", (BIG_BODY,)
        )
    async with db.reading() as connection, connection.execute("SELECT COUNT(*) FROM modules") as cursor:
        assert await cursor.fetchone() == (1,)
