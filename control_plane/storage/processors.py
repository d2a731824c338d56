"""Processors (JavaScript/TypeScript request handlers) and their runnable code by content hash.

Invariants:
- `code` is exactly what the user saved; `code_hash` names the runnable JavaScript in
  `processor_code` (esbuild's output), which is stored in the same transaction as the row
  that refers to it. Code rows are shared by equal code and never change; like module
  bytes, they outlive the processors that used them.
- `language` is "js" or "ts" and `runtime` "v8" or "wasm" (normalised before storing;
  the table CHECKs both).
- An update replaces every field but `id` and `created_at`, in one transaction; a refused
  save (the caller validates and transpiles first) writes nothing.
- Listing is oldest first (insertion order).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import aiosqlite

from control_plane.storage.database import Database
from shared.timestamps import utc_now


@dataclass(frozen=True)
class ProcessorFields:
    """What a user sets on a processor, validated and normalised."""

    name: str
    language: str
    runtime: str
    code: str


@dataclass(frozen=True)
class RunnableCode:
    """The JavaScript a data plane runs for a processor, named by its content hash."""

    code_hash: str
    js: str


@dataclass(frozen=True)
class Processor:
    id: str
    name: str
    language: str
    runtime: str
    code: str
    code_hash: str
    created_at: str
    updated_at: str


_COLUMNS = "id, name, language, runtime, code, code_hash, created_at, updated_at"


async def create_processor(db: Database, fields: ProcessorFields, runnable: RunnableCode) -> Processor:
    now = utc_now()
    processor = Processor(
        str(uuid.uuid4()),
        fields.name,
        fields.language,
        fields.runtime,
        fields.code,
        runnable.code_hash,
        now,
        now,
    )
    async with db.transaction() as connection:
        await _store_code(connection, runnable, now)
        await connection.execute(
            f"INSERT INTO processors ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                processor.id,
                processor.name,
                processor.language,
                processor.runtime,
                processor.code,
                processor.code_hash,
                processor.created_at,
                processor.updated_at,
            ),
        )
    return processor


async def replace_processor(
    db: Database, processor_id: str, fields: ProcessorFields, runnable: RunnableCode
) -> Processor | None:
    """Replace every user-set field of the processor; None (and nothing written) if there is none."""
    now = utc_now()
    async with db.transaction() as connection:
        if await _processor(connection, processor_id) is None:
            return None
        await _store_code(connection, runnable, now)
        await connection.execute(
            "UPDATE processors SET name = ?, language = ?, runtime = ?, code = ?, code_hash = ?, "
            "updated_at = ? WHERE id = ?",
            (
                fields.name,
                fields.language,
                fields.runtime,
                fields.code,
                runnable.code_hash,
                now,
                processor_id,
            ),
        )
        return await _processor(connection, processor_id)


async def get_processor(db: Database, processor_id: str) -> Processor | None:
    async with db.reading() as connection:
        return await _processor(connection, processor_id)


async def list_processors(db: Database) -> list[Processor]:
    """Every processor, oldest first."""
    async with (
        db.reading() as connection,
        connection.execute(f"SELECT {_COLUMNS} FROM processors ORDER BY seq") as cursor,
    ):
        return [Processor(*row) for row in await cursor.fetchall()]


async def delete_processor(db: Database, processor_id: str) -> bool:
    """Delete the processor; False if there was none. Its code row stays (it may be shared)."""
    async with db.transaction() as connection:
        cursor = await connection.execute("DELETE FROM processors WHERE id = ?", (processor_id,))
        return cursor.rowcount > 0


async def load_code(db: Database, code_hash: str) -> str | None:
    """The runnable JavaScript stored under `code_hash`, if any."""
    async with (
        db.reading() as connection,
        connection.execute("SELECT js FROM processor_code WHERE code_hash = ?", (code_hash,)) as cursor,
    ):
        row = await cursor.fetchone()
    return str(row[0]) if row else None


async def _store_code(connection: aiosqlite.Connection, runnable: RunnableCode, now: str) -> None:
    await connection.execute(
        "INSERT OR IGNORE INTO processor_code (code_hash, js, created_at) VALUES (?, ?, ?)",
        (runnable.code_hash, runnable.js, now),
    )


async def _processor(connection: aiosqlite.Connection, processor_id: str) -> Processor | None:
    async with connection.execute(
        f"SELECT {_COLUMNS} FROM processors WHERE id = ?", (processor_id,)
    ) as cursor:
        row = await cursor.fetchone()
    return Processor(*row) if row else None
