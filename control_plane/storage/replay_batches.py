"""Batch replay reports: one row per batch, its report as JSON.

Invariants:
- A batch's row is written when it starts (state "running") and replaced when it ends
  ("finished"); a batch the process was running when it stopped is marked "interrupted"
  at the next start (`interrupt_running`): batches run in the memory of one process.
- `state` in the column wins over the one inside the stored report.
- Only the newest `keep` rows are kept (`insert_batch` deletes older ones).
"""

from __future__ import annotations

import json
from typing import Any

from control_plane.storage.database import Database


async def insert_batch(db: Database, report: dict[str, Any], *, keep: int) -> None:
    async with db.transaction() as connection:
        await connection.execute(
            "INSERT INTO replay_batches (id, created_at, state, endpoint_id, processor_id, report) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                report["id"],
                report["created_at"],
                report["state"],
                report.get("endpoint_id"),
                report.get("processor_id"),
                json.dumps(report),
            ),
        )
        await connection.execute(
            "DELETE FROM replay_batches WHERE seq <= (SELECT MAX(seq) FROM replay_batches) - ?", (keep,)
        )


async def update_batch(db: Database, report: dict[str, Any]) -> None:
    async with db.transaction() as connection:
        await connection.execute(
            "UPDATE replay_batches SET state = ?, report = ? WHERE id = ?",
            (report["state"], json.dumps(report), report["id"]),
        )


async def get_batch(db: Database, batch_id: str) -> dict[str, Any] | None:
    async with (
        db.reading() as connection,
        connection.execute("SELECT state, report FROM replay_batches WHERE id = ?", (batch_id,)) as cursor,
    ):
        row = await cursor.fetchone()
    return _report(row) if row else None


async def list_batches(
    db: Database, *, limit: int, endpoint_id: str | None = None, processor_id: str | None = None
) -> list[dict[str, Any]]:
    """The newest `limit` batch reports, newest first, without their runs."""
    clauses, params = [], []
    for column, value in (("endpoint_id", endpoint_id), ("processor_id", processor_id)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    async with (
        db.reading() as connection,
        connection.execute(
            f"SELECT state, report FROM replay_batches {where} ORDER BY seq DESC LIMIT ?", (*params, limit)
        ) as cursor,
    ):
        rows = await cursor.fetchall()
    reports = [_report(row) for row in rows]
    for report in reports:
        report.pop("runs", None)
    return reports


async def interrupt_running(db: Database) -> int:
    """Mark batches left "running" by a previous process "interrupted"; how many."""
    async with db.transaction() as connection:
        cursor = await connection.execute(
            "UPDATE replay_batches SET state = 'interrupted' WHERE state = 'running'"
        )
        return cursor.rowcount


def _report(row: Any) -> dict[str, Any]:
    state, report = row
    value: dict[str, Any] = json.loads(report)
    value["state"] = state
    return value
