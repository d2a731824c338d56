"""Module bytes by content hash: stored once, never changed, shared by every deploy of them.

SQLite keeps the bytes (not only Redis) so that a wiped Redis can be refilled from here.  Bytes
stay as long as any deploy refers to them, active or not, of any endpoint (a rollback may need
any deploy of a history); once none does (the endpoints deployed them are deleted), they are
garbage (`delete_unreferenced_modules`).
"""

from __future__ import annotations

import aiosqlite

from control_plane.storage.database import Database
from shared.timestamps import utc_now


async def store_module(connection: aiosqlite.Connection, module_hash: str, data: bytes) -> None:
    """Insert the bytes unless a module with this hash is stored already.

    Takes a connection, not a `Database`: it runs inside the caller's deploy transaction.
    """
    await connection.execute(
        "INSERT OR IGNORE INTO modules (hash, bytes, size, created_at) VALUES (?, ?, ?, ?)",
        (module_hash, data, len(data), utc_now()),
    )


async def load_module(db: Database, module_hash: str) -> bytes | None:
    async with (
        db.reading() as connection,
        connection.execute("SELECT bytes FROM modules WHERE hash = ?", (module_hash,)) as cursor,
    ):
        row = await cursor.fetchone()
    return bytes(row[0]) if row else None


async def delete_unreferenced_modules(db: Database) -> list[str]:
    """Delete the bytes no deploy refers to, in one transaction; the hashes deleted."""
    unreferenced = "FROM modules WHERE hash NOT IN (SELECT module_hash FROM deploys)"
    async with db.transaction() as connection:
        async with connection.execute(f"SELECT hash {unreferenced}") as cursor:
            hashes = [str(row[0]) for row in await cursor.fetchall()]
        await connection.execute(f"DELETE {unreferenced}")
    return hashes


async def referenced_module_hashes(db: Database) -> set[str]:
    """The hash of every module some deploy refers to."""
    async with (
        db.reading() as connection,
        connection.execute("SELECT DISTINCT module_hash FROM deploys") as cursor,
    ):
        return {str(row[0]) for row in await cursor.fetchall()}
