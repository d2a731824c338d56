"""Processor versions: every create and every replace of a processor stores one, immutable.

Invariants:
- A version row never changes after its insert; a processor's versions are listed oldest
  first (insertion order), like an endpoint's deploys.
- A version's `code_hash` names runnable JavaScript in `processor_code`, stored in the same
  transaction as the version (see `storage.processors`).
- Deleting a processor deletes its versions (ON DELETE CASCADE); conversations that name a
  version keep its id.
- Functions taking a connection run inside the caller's transaction or read.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import aiosqlite

from control_plane.storage.database import Database


@dataclass(frozen=True)
class ProcessorVersion:
    """One saved state of a processor, without its code (`version_code` reads that)."""

    id: str
    processor_id: str
    name: str
    language: str
    runtime: str
    code_hash: str
    created_at: str


_COLUMNS = "id, processor_id, name, language, runtime, code_hash, created_at"


async def add_version(
    connection: aiosqlite.Connection,
    processor_id: str,
    *,
    name: str,
    language: str,
    runtime: str,
    code: str,
    code_hash: str,
    created_at: str,
) -> ProcessorVersion:
    """Insert a new version of the processor (inside the caller's transaction)."""
    version = ProcessorVersion(
        str(uuid.uuid4()), processor_id, name, language, runtime, code_hash, created_at
    )
    await connection.execute(
        "INSERT INTO processor_versions "
        "(id, processor_id, name, language, runtime, code, code_hash, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (version.id, processor_id, name, language, runtime, code, code_hash, created_at),
    )
    return version


async def history(connection: aiosqlite.Connection, processor_id: str) -> tuple[ProcessorVersion, ...]:
    """The processor's versions, oldest first."""
    async with connection.execute(
        f"SELECT {_COLUMNS} FROM processor_versions WHERE processor_id = ? ORDER BY seq", (processor_id,)
    ) as cursor:
        return tuple(ProcessorVersion(*row) for row in await cursor.fetchall())


async def all_histories(connection: aiosqlite.Connection) -> dict[str, list[ProcessorVersion]]:
    """Every processor's versions, oldest first, by processor id."""
    histories: dict[str, list[ProcessorVersion]] = {}
    async with connection.execute(f"SELECT {_COLUMNS} FROM processor_versions ORDER BY seq") as cursor:
        for row in await cursor.fetchall():
            version = ProcessorVersion(*row)
            histories.setdefault(version.processor_id, []).append(version)
    return histories


async def get_version(db: Database, version_id: str) -> tuple[ProcessorVersion, str] | None:
    """The version and its code as saved; None if there is no such version."""
    async with (
        db.reading() as connection,
        connection.execute(
            f"SELECT {_COLUMNS}, code FROM processor_versions WHERE id = ?", (version_id,)
        ) as cursor,
    ):
        row = await cursor.fetchone()
    if row is None:
        return None
    return ProcessorVersion(*row[:-1]), str(row[-1])
