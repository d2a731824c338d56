"""Conversations and their audit items, as ingested from the data planes' stream.

Invariants:
- A conversation and all its audit items are written in one transaction, and writing
  the same conversation again changes nothing (INSERT OR IGNORE by conversation id and
  by item id): ingestion is idempotent, so a record delivered twice is stored once.
- Items keep the order of the record (`position` 0, 1, ...); payloads are stored as JSON
  text and read back as the same JSON value.
- Timestamps are stored in the one FFAAS format (`shared.timestamps`), so text order is
  time order (retention deletes by it).
- Every stored conversation gets `seq`, one more than the last one ever stored (the counter
  `conversation_sequence.last`, in the storing transaction). Writers are serialized (BEGIN
  IMMEDIATE), so once a reader sees `seq` N it sees every conversation stored before it:
  paging by `seq` (the list, newest first; the live stream, oldest first) never skips one,
  even one created long before it was stored.
- Deleting a conversation deletes its items (ON DELETE CASCADE); deletions run in
  batches of at most `limit` conversations, one short transaction each.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from control_plane.storage.database import Database
from shared.conversations import ConversationRecord
from shared.timestamps import format_timestamp

_CONVERSATION_COLUMNS = (
    "id, created_at, finished_at, duration_ms, outcome, status, error, error_detail, "
    "endpoint_id, deploy_id, module_hash, request_processor_id, processor_version_id, replay_of, "
    "replay_mode, audit_items_dropped"
)
_STORED_COLUMNS = f"{_CONVERSATION_COLUMNS}, seq"
_ITEM_COLUMNS = "kind, id, created_at, conversation_id, payload, inc, request"


@dataclass(frozen=True)
class Conversation:
    id: str
    created_at: str
    finished_at: str | None
    duration_ms: float | None
    outcome: str
    status: int
    error: str | None
    error_detail: str | None
    endpoint_id: str | None
    deploy_id: str | None
    module_hash: str | None
    request_processor_id: str | None
    processor_version_id: str | None = None
    replay_of: str | None = None
    replay_mode: str | None = None
    audit_items_dropped: int = 0
    seq: int = 0
    """Its place in storage order: the list's and the stream's cursor."""


@dataclass(frozen=True)
class ConversationFilter:
    """Which conversations a listing or the stream shows; None matches anything.

    `replay_of`: only replays of that conversation; `is_replay`: only replays (True) or only
    original runs (False); `since`: created at or after that timestamp.
    """

    endpoint_id: str | None = None
    processor_id: str | None = None
    outcome: str | None = None
    replay_of: str | None = None
    is_replay: bool | None = None
    since: str | None = None

    def clauses(self) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("endpoint_id", self.endpoint_id),
            ("request_processor_id", self.processor_id),
            ("outcome", self.outcome),
            ("replay_of", self.replay_of),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.is_replay is not None:
            clauses.append("replay_of IS NOT NULL" if self.is_replay else "replay_of IS NULL")
        if self.since is not None:
            clauses.append("created_at >= ?")
            params.append(self.since)
        return clauses, params


ANY_CONVERSATION = ConversationFilter()


@dataclass(frozen=True)
class StoredItem:
    kind: str
    id: str
    created_at: str
    conversation_id: str
    payload: Any
    inc: int | None
    request: str | None


@dataclass(frozen=True)
class ConversationRows:
    """One record as rows, checked: storing them cannot fail for a reason in the record."""

    conversation: tuple[Any, ...]
    items: list[tuple[Any, ...]]


def conversation_rows(record: ConversationRecord, ingested_at: str) -> ConversationRows:
    """Check `record` and turn it into rows; `ValueError` names the first bad field."""
    conversation = (
        _text(record.id, "id"),
        _timestamp(record.created_at, "created_at"),
        None if record.finished_at is None else _timestamp(record.finished_at, "finished_at"),
        _number(record.duration_ms, "duration_ms"),
        _text(record.outcome, "outcome"),
        _integer(record.status, "status"),
        _optional_text(record.error, "error"),
        _optional_text(record.error_detail, "error_detail"),
        _optional_text(record.endpoint_id, "endpoint_id"),
        _optional_text(record.deploy_id, "deploy_id"),
        _optional_text(record.module_hash, "module_hash"),
        _optional_text(record.request_processor_id, "request_processor_id"),
        _optional_text(record.processor_version_id, "processor_version_id"),
        _optional_text(record.replay_of, "replay_of"),
        _optional_text(record.replay_mode, "replay_mode"),
        _integer(record.audit_items_dropped, "audit_items_dropped"),
        ingested_at,
    )
    items = [
        (
            _text(item.id, "item id"),
            record.id,
            position,
            _text(item.kind, "item kind"),
            _timestamp(item.created_at, "item created_at"),
            json.dumps(item.payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False),
            None if item.inc is None else _integer(item.inc, "item inc"),
            _optional_text(item.request, "item request"),
        )
        for position, item in enumerate(record.items)
    ]
    return ConversationRows(conversation, items)


STORE_CHUNK = 500
"""Conversation ids looked up in one `SELECT ... IN (...)` (well under SQLite's variable limit)."""


async def store_conversations(db: Database, batch: list[ConversationRows]) -> int:
    """Store every conversation of `batch` in one transaction; how many were new.

    A handful of statements per batch, not two per conversation (each statement is a hop to the
    database thread and back): the ids already stored are looked up, the new conversations get
    their `seq` in batch order (an id twice in the batch, or already stored, is stored once and
    numbered once), then every conversation and every item is inserted with one `executemany`
    each (INSERT OR IGNORE: what is stored already stays as it is)."""
    async with db.transaction() as connection:
        async with connection.execute("SELECT last FROM conversation_sequence") as cursor:
            row = await cursor.fetchone()
        last = int(row[0]) if row else 0
        seen = await _stored_ids(connection, [rows.conversation[0] for rows in batch])
        conversations: list[tuple[Any, ...]] = []
        items: list[tuple[Any, ...]] = []
        for rows in batch:
            conversation_id = rows.conversation[0]
            if conversation_id not in seen:
                seen.add(conversation_id)
                last += 1
                conversations.append((*rows.conversation, last))
            items += rows.items
        if conversations:
            await connection.executemany(
                f"INSERT OR IGNORE INTO conversations ({_CONVERSATION_COLUMNS}, ingested_at, seq) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                conversations,
            )
        if items:
            await connection.executemany(
                "INSERT OR IGNORE INTO audit_items "
                "(id, conversation_id, position, kind, created_at, payload, inc, request) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                items,
            )
        if conversations:
            await connection.execute("UPDATE conversation_sequence SET last = ?", (last,))
    return len(conversations)


async def _stored_ids(connection: aiosqlite.Connection, conversation_ids: list[str]) -> set[str]:
    """Which of `conversation_ids` are stored already."""
    stored: set[str] = set()
    for start in range(0, len(conversation_ids), STORE_CHUNK):
        chunk = conversation_ids[start : start + STORE_CHUNK]
        placeholders = ", ".join("?" * len(chunk))
        async with connection.execute(
            f"SELECT id FROM conversations WHERE id IN ({placeholders})", chunk
        ) as cursor:
            stored.update(row[0] for row in await cursor.fetchall())
    return stored


async def get_conversation(
    db: Database, conversation_id: str
) -> tuple[Conversation, list[StoredItem]] | None:
    """The conversation and its items in record order, read together; None if unknown."""
    async with db.reading() as connection:
        async with connection.execute(
            f"SELECT {_STORED_COLUMNS} FROM conversations WHERE id = ?", (conversation_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        async with connection.execute(
            f"SELECT {_ITEM_COLUMNS} FROM audit_items WHERE conversation_id = ? ORDER BY position",
            (conversation_id,),
        ) as cursor:
            items = [_item(item_row) for item_row in await cursor.fetchall()]
    return Conversation(*row), items


async def list_conversations(
    db: Database,
    *,
    limit: int,
    matching: ConversationFilter = ANY_CONVERSATION,
    before: int | None = None,
) -> list[Conversation]:
    """At most `limit` conversations, last stored first, stored before `before` (a `seq`)."""
    clauses, params = matching.clauses()
    if before is not None:
        clauses.append("seq < ?")
        params.append(before)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    async with (
        db.reading() as connection,
        connection.execute(
            f"SELECT {_STORED_COLUMNS} FROM conversations {where} ORDER BY seq DESC LIMIT ?",
            (*params, limit),
        ) as cursor,
    ):
        return [Conversation(*row) for row in await cursor.fetchall()]


async def conversations_after(
    db: Database, *, after: int, through: int, limit: int, matching: ConversationFilter = ANY_CONVERSATION
) -> list[Conversation]:
    """At most `limit` conversations with `after < seq <= through`, in storage order."""
    clauses, params = matching.clauses()
    where = " AND ".join(["seq > ?", "seq <= ?", *clauses])
    async with (
        db.reading() as connection,
        connection.execute(
            f"SELECT {_STORED_COLUMNS} FROM conversations WHERE {where} ORDER BY seq LIMIT ?",
            (after, through, *params, limit),
        ) as cursor,
    ):
        return [Conversation(*row) for row in await cursor.fetchall()]


async def last_stored_seq(db: Database) -> int:
    """The `seq` of the last conversation ever stored (0 before the first), deleted or not."""
    async with (
        db.reading() as connection,
        connection.execute("SELECT last FROM conversation_sequence") as cursor,
    ):
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def request_lines(db: Database, conversation_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Each conversation's incoming request method and path (the first audit item), by id."""
    if not conversation_ids:
        return {}
    marks = ", ".join("?" * len(conversation_ids))
    async with (
        db.reading() as connection,
        connection.execute(
            "SELECT conversation_id, json_extract(payload, '$.method'), json_extract(payload, '$.path') "
            f"FROM audit_items WHERE position = 0 AND conversation_id IN ({marks})",
            conversation_ids,
        ) as cursor,
    ):
        return {
            row[0]: (str(row[1] or ""), str(row[2] or ""))
            for row in await cursor.fetchall()
            if isinstance(row[1], str)
        }


async def count_conversations(db: Database) -> int:
    async with db.reading() as connection, connection.execute("SELECT COUNT(*) FROM conversations") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def delete_created_before(db: Database, cutoff: str, limit: int) -> int:
    """Delete up to `limit` of the oldest conversations created before `cutoff`; how many."""
    async with db.transaction() as connection:
        cursor = await connection.execute(
            "DELETE FROM conversations WHERE id IN (SELECT id FROM conversations "
            "WHERE created_at < ? ORDER BY created_at, id LIMIT ?)",
            (cutoff, limit),
        )
        return cursor.rowcount


async def delete_oldest(db: Database, limit: int) -> int:
    """Delete the `limit` oldest conversations (fewer if there are fewer); how many."""
    async with db.transaction() as connection:
        cursor = await connection.execute(
            "DELETE FROM conversations WHERE id IN "
            "(SELECT id FROM conversations ORDER BY created_at, id LIMIT ?)",
            (limit,),
        )
        return cursor.rowcount


def _item(row: Any) -> StoredItem:
    kind, item_id, created_at, conversation_id, payload, inc, request = row
    return StoredItem(kind, item_id, created_at, conversation_id, json.loads(payload), inc, request)


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r:.80}")
    return value


def _optional_text(value: object, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or null, got {value!r:.80}")
    return value


def _integer(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) >= 2**63:
        raise ValueError(f"{name} must be a 64-bit integer, got {value!r:.80}")
    return value


def _number(value: object, name: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r:.80}")
    return float(value)


def _timestamp(value: object, name: str) -> str:
    """The timestamp in the one FFAAS format (RFC 3339, UTC, microseconds, Z)."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an RFC 3339 timestamp, got {value!r:.80}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be an RFC 3339 timestamp, got {value!r:.80}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_timestamp(moment)
