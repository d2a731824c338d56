"""Processors (JavaScript/TypeScript request handlers) and their runnable code by content hash.

Invariants:
- `code` is exactly what the user saved; `code_hash` names the runnable JavaScript in
  `processor_code` (esbuild's output), which is stored in the same transaction as the row
  that refers to it. Code rows are shared by equal code and never change; once neither a
  processor nor any version of one refers to a row (its processors were deleted, which deletes
  their versions), it is garbage (`delete_unreferenced_code`).  Whatever else comes to refer
  to code must be counted there.
- `language` is "js" or "ts" and `runtime` "v8" or "wasm" (normalised before storing;
  the table CHECKs both).
- Every create and every update stores a new immutable version (`processor_versions`) and
  makes it active; the row's user-set fields are always those of its active version
  (`active_version_id`). An update replaces every field but `id` and `created_at`, in one
  transaction; a refused save (the caller validates and transpiles first) writes nothing.
- Activating an earlier version (rollback) copies that version's fields into the row; the
  version history itself never changes.
- Listing is oldest first (insertion order).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import aiosqlite

from control_plane.storage import processor_versions as versions
from control_plane.storage.database import Database
from control_plane.storage.processor_versions import ProcessorVersion
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
    active_version_id: str
    version_history: tuple[ProcessorVersion, ...]


_COLUMNS = "id, name, language, runtime, code, code_hash, created_at, updated_at, active_version_id"


async def create_processor(db: Database, fields: ProcessorFields, runnable: RunnableCode) -> Processor:
    """Store a new processor and its first version, which is active."""
    now = utc_now()
    processor_id = str(uuid.uuid4())
    async with db.transaction() as connection:
        await _store_code(connection, runnable, now)
        await connection.execute(
            f"INSERT INTO processors ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            (
                processor_id,
                fields.name,
                fields.language,
                fields.runtime,
                fields.code,
                runnable.code_hash,
                now,
                now,
            ),
        )
        version = await _add_version(connection, processor_id, fields, runnable, now)
        await connection.execute(
            "UPDATE processors SET active_version_id = ? WHERE id = ?", (version.id, processor_id)
        )
        processor = await _processor(connection, processor_id)
    assert processor is not None
    return processor


async def replace_processor(
    db: Database, processor_id: str, fields: ProcessorFields, runnable: RunnableCode
) -> Processor | None:
    """Store a new version with every user-set field and make it active; None (and nothing
    written) if there is no such processor."""
    now = utc_now()
    async with db.transaction() as connection:
        if await _processor(connection, processor_id) is None:
            return None
        await _store_code(connection, runnable, now)
        version = await _add_version(connection, processor_id, fields, runnable, now)
        await connection.execute(
            "UPDATE processors SET name = ?, language = ?, runtime = ?, code = ?, code_hash = ?, "
            "updated_at = ?, active_version_id = ? WHERE id = ?",
            (
                fields.name,
                fields.language,
                fields.runtime,
                fields.code,
                runnable.code_hash,
                now,
                version.id,
                processor_id,
            ),
        )
        return await _processor(connection, processor_id)


async def activate_version(
    db: Database, processor_id: str, choose: Callable[[Processor], ProcessorVersion]
) -> Processor | None:
    """Make `choose(processor)` the active version, in one transaction; None if no processor.

    `choose` sees the processor as stored inside the transaction and may raise to refuse;
    then nothing changes. It must return one of the processor's own versions.
    """
    async with db.transaction() as connection:
        processor = await _processor(connection, processor_id)
        if processor is None:
            return None
        version = choose(processor)
        if version not in processor.version_history:
            raise ValueError(f"version {version.id} does not belong to processor {processor_id}")
        await connection.execute(
            "UPDATE processors SET (name, language, runtime, code, code_hash) = "
            "(SELECT name, language, runtime, code, code_hash FROM processor_versions WHERE id = ?), "
            "active_version_id = ?, updated_at = ? WHERE id = ?",
            (version.id, version.id, utc_now(), processor_id),
        )
        return await _processor(connection, processor_id)


async def get_processor(db: Database, processor_id: str) -> Processor | None:
    async with db.reading() as connection:
        return await _processor(connection, processor_id)


async def list_processors(db: Database) -> list[Processor]:
    """Every processor, oldest first, each with its version history oldest first."""
    async with db.reading() as connection:
        async with connection.execute(f"SELECT {_COLUMNS} FROM processors ORDER BY seq") as cursor:
            rows = await cursor.fetchall()
        histories = await versions.all_histories(connection)
    return [_from_row(row, tuple(histories.get(row[0], ()))) for row in rows]


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


_REFERENCED_CODE = "SELECT code_hash FROM processors UNION SELECT code_hash FROM processor_versions"


async def delete_unreferenced_code(db: Database) -> list[str]:
    """Delete the runnable code no processor and no processor version refers to, in one
    transaction; the hashes deleted."""
    unreferenced = f"FROM processor_code WHERE code_hash NOT IN ({_REFERENCED_CODE})"
    async with db.transaction() as connection:
        async with connection.execute(f"SELECT code_hash {unreferenced}") as cursor:
            hashes = [str(row[0]) for row in await cursor.fetchall()]
        await connection.execute(f"DELETE {unreferenced}")
    return hashes


async def referenced_code_hashes(db: Database) -> set[str]:
    """The hash of the runnable code of every processor and of every version of one."""
    async with db.reading() as connection, connection.execute(_REFERENCED_CODE) as cursor:
        return {str(row[0]) for row in await cursor.fetchall()}


async def _store_code(connection: aiosqlite.Connection, runnable: RunnableCode, now: str) -> None:
    await connection.execute(
        "INSERT OR IGNORE INTO processor_code (code_hash, js, created_at) VALUES (?, ?, ?)",
        (runnable.code_hash, runnable.js, now),
    )


async def _add_version(
    connection: aiosqlite.Connection,
    processor_id: str,
    fields: ProcessorFields,
    runnable: RunnableCode,
    now: str,
) -> ProcessorVersion:
    return await versions.add_version(
        connection,
        processor_id,
        name=fields.name,
        language=fields.language,
        runtime=fields.runtime,
        code=fields.code,
        code_hash=runnable.code_hash,
        created_at=now,
    )


async def _processor(connection: aiosqlite.Connection, processor_id: str) -> Processor | None:
    async with connection.execute(
        f"SELECT {_COLUMNS} FROM processors WHERE id = ?", (processor_id,)
    ) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return None
    return _from_row(row, await versions.history(connection, processor_id))


def _from_row(row: aiosqlite.Row, history: tuple[ProcessorVersion, ...]) -> Processor:
    processor_id, name, language, runtime, code, code_hash, created_at, updated_at, active_version_id = row
    return Processor(
        processor_id,
        name,
        language,
        runtime,
        code,
        code_hash,
        created_at,
        updated_at,
        active_version_id,
        history,
    )
