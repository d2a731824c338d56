"""Reading the control plane's SQLite file directly: what the background ingest has stored.

Reading the file, not `GET /conversation/<id>`, keeps the control plane's
`catch_up` (which ingests on demand) out of what is measured. Only SELECTs; one
connection, used by the thread that opened it. The control plane runs the file in
WAL mode, so these reads never wait for its writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from pathlib import Path


class ConversationFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection = sqlite3.connect(path, timeout=5.0, isolation_level=None)

    def conversations(self) -> int:
        return self._count("conversations")

    def audit_items(self) -> int:
        return self._count("audit_items")

    def stored_among(self, conversation_ids: Collection[str]) -> set[str]:
        """Which of `conversation_ids` are stored (at most 500 per call: SQLite's parameter limit)."""
        if not conversation_ids:
            return set()
        marks = ",".join("?" * len(conversation_ids))
        rows = self._connection.execute(
            f"SELECT id FROM conversations WHERE id IN ({marks})", tuple(conversation_ids)
        ).fetchall()
        return {row[0] for row in rows}

    def _count(self, table: str) -> int:
        row = self._connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
        return int(row[0])

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> ConversationFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
