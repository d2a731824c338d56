"""Module bytes by content hash: stored once, never changed, shared by every deploy of them.

SQLite keeps the bytes (not only Redis) so that a wiped Redis can be refilled from here.
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
