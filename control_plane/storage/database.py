"""The control plane's SQLite database: one aiosqlite connection, ordered migrations.

Invariants:
- The database is a real file (WAL journal, foreign keys on, a busy timeout).
- Schema changes are the ordered `MIGRATIONS`; `PRAGMA user_version` counts the ones
  applied, and each is applied in its own transaction, so a failed migration leaves
  the previous version intact.
- Every read and every transaction holds `Database`'s lock: the connection is shared
  by all requests, and a reader must never see another request's uncommitted writes.
- A transaction that fails, in a statement or in its COMMIT (a full disk, a deferred
  constraint), leaves the connection outside any transaction: the next write starts
  afresh, with no restart. The error that made it fail is the one raised.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

log = logging.getLogger("ffaas.control_plane.database")

SQL_UUID4 = (
    "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' "
    "|| substr('89ab', 1 + abs(random()) % 4, 1) || substr(hex(randomblob(2)), 2) || '-' "
    "|| hex(randomblob(6)))"
)
"""A random UUID (version 4) computed by SQLite, for rows a migration creates."""

MIGRATIONS: tuple[str, ...] = (
    # 1: endpoints, their deploys and environment, and module bytes by content hash.
    """
    CREATE TABLE endpoints (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        active_deploy_id TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE modules (
        hash TEXT PRIMARY KEY,
        bytes BLOB NOT NULL,
        size INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE deploys (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        endpoint_id TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
        module_hash TEXT NOT NULL REFERENCES modules(hash),
        created_at TEXT NOT NULL
    );
    CREATE INDEX deploys_by_endpoint ON deploys(endpoint_id, seq);
    CREATE TABLE endpoint_env (
        endpoint_id TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (endpoint_id, name)
    );
    """,
    # 2: conversations ingested from the Redis stream, and their audit items in record order.
    # No foreign key to endpoints: a conversation outlives the endpoint or processor that ran.
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        finished_at TEXT,
        duration_ms REAL,
        outcome TEXT NOT NULL,
        status INTEGER NOT NULL,
        error TEXT,
        error_detail TEXT,
        endpoint_id TEXT,
        deploy_id TEXT,
        module_hash TEXT,
        request_processor_id TEXT,
        ingested_at TEXT NOT NULL
    );
    CREATE INDEX conversations_by_time ON conversations(created_at, id);
    CREATE INDEX conversations_by_endpoint ON conversations(endpoint_id, created_at, id);
    CREATE INDEX conversations_by_processor ON conversations(request_processor_id, created_at, id);
    CREATE TABLE audit_items (
        id TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        kind TEXT NOT NULL,
        created_at TEXT NOT NULL,
        payload TEXT NOT NULL,
        inc INTEGER,
        request TEXT
    );
    CREATE INDEX audit_items_by_conversation ON audit_items(conversation_id, position);
    """,
    # 3: JavaScript/TypeScript processors. `code` is what the user saved; `code_hash` names the
    # runnable JavaScript (transpiled when TypeScript) in `processor_code`, shared by equal code.
    """
    CREATE TABLE processor_code (
        code_hash TEXT PRIMARY KEY,
        js TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE processors (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        language TEXT NOT NULL CHECK (language IN ('js', 'ts')),
        runtime TEXT NOT NULL CHECK (runtime IN ('v8', 'wasm')),
        code TEXT NOT NULL,
        code_hash TEXT NOT NULL REFERENCES processor_code(code_hash),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 4: processor versions. Every save stores an immutable version; `processors` keeps the fields
    # of its active one (`active_version_id`). Each existing processor gets its first version here.
    f"""
    CREATE TABLE processor_versions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        processor_id TEXT NOT NULL REFERENCES processors(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        language TEXT NOT NULL CHECK (language IN ('js', 'ts')),
        runtime TEXT NOT NULL CHECK (runtime IN ('v8', 'wasm')),
        code TEXT NOT NULL,
        code_hash TEXT NOT NULL REFERENCES processor_code(code_hash),
        created_at TEXT NOT NULL
    );
    CREATE INDEX processor_versions_by_processor ON processor_versions(processor_id, seq);
    ALTER TABLE processors ADD COLUMN active_version_id TEXT;
    INSERT INTO processor_versions (id, processor_id, name, language, runtime, code, code_hash, created_at)
        SELECT {SQL_UUID4}, id, name, language, runtime, code, code_hash, updated_at
        FROM processors ORDER BY seq;
    UPDATE processors SET active_version_id =
        (SELECT v.id FROM processor_versions v WHERE v.processor_id = processors.id);
    """,
    # 5: what a conversation ran and whether it replays another: the processor version, and for a
    # replay the original conversation's id and the replay's outbound mode.
    """
    ALTER TABLE conversations ADD COLUMN processor_version_id TEXT;
    ALTER TABLE conversations ADD COLUMN replay_of TEXT;
    ALTER TABLE conversations ADD COLUMN replay_mode TEXT;
    CREATE INDEX conversations_by_replay_of ON conversations(replay_of, created_at, id);
    """,
    # 6: batch replays: one row per batch, its report as JSON once it has finished.
    """
    CREATE TABLE replay_batches (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        state TEXT NOT NULL,
        endpoint_id TEXT,
        processor_id TEXT,
        report TEXT NOT NULL
    );
    """,
    # 7: how many audit items a data plane left out of a record (FFAAS_MAX_AUDIT_ITEMS).
    """
    ALTER TABLE conversations ADD COLUMN audit_items_dropped INTEGER NOT NULL DEFAULT 0;
    """,
    # 8: conversations get `seq`, their place in storage order, assigned when the row is stored from
    # the one counter `conversation_sequence.last` (never reused, even when retention empties the
    # table). Listing and the live stream page by it: a run stored late (a data plane's outbox
    # drained after a Redis outage) still comes after everything stored before it.
    """
    ALTER TABLE conversations ADD COLUMN seq INTEGER;
    UPDATE conversations SET seq = numbered.position
        FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY created_at, id) AS position FROM conversations)
        AS numbered
        WHERE numbered.id = conversations.id;
    CREATE UNIQUE INDEX conversations_by_seq ON conversations(seq);
    DROP INDEX conversations_by_endpoint;
    DROP INDEX conversations_by_processor;
    CREATE INDEX conversations_by_endpoint ON conversations(endpoint_id, seq);
    CREATE INDEX conversations_by_processor ON conversations(request_processor_id, seq);
    CREATE INDEX conversations_by_outcome ON conversations(outcome, seq);
    DROP INDEX conversations_by_replay_of;
    CREATE INDEX conversations_by_replay_of ON conversations(replay_of, seq);
    CREATE TABLE conversation_sequence (last INTEGER NOT NULL);
    INSERT INTO conversation_sequence SELECT COALESCE(MAX(seq), 0) FROM conversations;
    """,
)


class Database:
    """The shared connection and the lock that serializes its use."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            yield self._connection

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Commit everything done inside the block, or nothing if the block or the COMMIT raises."""
        async with self._lock:
            await self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
                await self._connection.execute("COMMIT")
            except BaseException:
                await self._roll_back()
                raise

    async def _roll_back(self) -> None:
        """End the failed transaction, if SQLite has not already (it does for a full disk)."""
        if not self._connection.in_transaction:
            return
        try:
            await self._connection.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.error("ROLLBACK of a failed transaction failed too: %r", exc)

    async def close(self) -> None:
        await self._connection.close()


async def open_database(path: Path) -> Database:
    """Open (creating it and its directory if needed) and migrate the database at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: no implicit transactions; `Database.transaction` says BEGIN itself.
    connection = await aiosqlite.connect(path, isolation_level=None)
    try:
        await connection.execute("PRAGMA journal_mode=WAL")
        await connection.execute("PRAGMA foreign_keys=ON")
        await connection.execute("PRAGMA busy_timeout=5000")
        await _migrate(connection)
    except BaseException:
        await connection.close()
        raise
    return Database(connection)


async def _migrate(connection: aiosqlite.Connection) -> None:
    async with connection.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {version} is newer than this control plane knows "
            f"({len(MIGRATIONS)}); upgrade the control plane"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        log.info("applying database migration %d", number)
        try:
            await connection.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;"
            )
        except BaseException:
            if connection.in_transaction:
                await connection.execute("ROLLBACK")
            raise
