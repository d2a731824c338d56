"""The conversation stream consumer: Redis stream `keys.conversations` -> SQLite.

Every run's record arrives as one stream entry (field `r`, a packed
`ConversationRecord`). The control plane reads it through the consumer group
`keys.ingest_group` (created with MKSTREAM at id 0 if missing) as consumer
"<hostname>-<pid>", and for each batch: writes all its conversations in ONE SQLite
transaction (idempotent, `storage.conversations`), commits, and only then XACKs. A
crash between commit and ack redelivers entries that are already stored: harmless.
Entries are not XDELed; the data planes bound the stream with MAXLEN.

Invariants:
- `_lock` is held from a read through its store and ack, by the background loop
  (whose blocking read waits at most `block_ms`) and by `catch_up`. So when
  `catch_up` returns, every entry added before it was called has been stored, unless
  another consumer (another control plane, or a crashed one) holds it pending; that is
  what makes "GET right after the response" see the conversation: the data plane
  XADDs the record before it answers.
- Own pending entries (left by a failed batch, or by a read whose reply was lost and
  that the client retried by itself) are read again ("0") before new ones, after any
  error, at every claim period and in every `catch_up`; entries idle longer than
  `claim_idle_ms` in other consumers are taken over with XAUTOCLAIM at start and
  periodically.
- A malformed entry is logged, counted, acked and skipped. Redis or SQLite errors are
  logged and retried with a bounded backoff: the loop never dies.
- The blocking read runs on a connection of its own (`_reader`), so `catch_up` and
  `stop` can end it at once with CLIENT UNBLOCK (it then returns nothing, as on a
  timeout) instead of waiting up to `block_ms`; while a `catch_up` waits for the lock,
  the loop starts no blocking read and yields between batches. Shutdown sets an event, unblocks the
  read and lets the loop end by itself (no cancellation in the middle of a Redis read);
  only a loop stuck past the stop timeout is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from control_plane.storage import conversations as store
from control_plane.storage.database import Database
from shared.conversations import STREAM_FIELD, ConversationRecord
from shared.keys import Keys
from shared.timestamps import utc_now

log = logging.getLogger("ffaas.control_plane.ingest")

BLOCK_MS = 100
BATCH = 500
MAX_BACKOFF_S = 5.0
CATCH_UP_LOCK_TIMEOUT_S = 5.0
YIELD_TO_CATCH_UP_S = 0.005
Entry = tuple[Any, Any]


@dataclass
class IngestStats:
    stored: int = 0
    """Conversations written for the first time."""
    duplicates: int = 0
    """Entries whose conversation was already stored (redeliveries)."""
    malformed: int = 0
    """Entries that could not be decoded: acked and skipped."""


class Ingester:
    def __init__(
        self,
        db: Database,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        claim_idle_ms: int,
        consumer: str | None = None,
        block_ms: int = BLOCK_MS,
        batch: int = BATCH,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        """`on_stored`: called after each commit that stored new conversations (the live feed's nudge)."""
        self._db = db
        self._on_stored = on_stored
        self._redis = redis
        self._stream = keys.conversations
        self._group = keys.ingest_group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._claim_idle_ms = claim_idle_ms
        self._claim_every_s = min(claim_idle_ms / 2000, 10.0)
        self._block_ms = block_ms
        self._batch = batch
        self._lock = asyncio.Lock()
        self._reader = redis.client()  # one dedicated connection, for the blocking read
        self._reader_id: int | None = None
        self._blocking = False
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._group_ready = False
        self._pending_possible = True
        self._next_claim = 0.0
        self._catch_up_calls = 0
        self._waiting = 0
        self._caught_up_through = 0
        self.stats = IngestStats()

    def start(self) -> None:
        """Start the background loop (group creation and the first claim happen inside it)."""
        self._task = asyncio.create_task(self._run(), name="ffaas-ingest")

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the loop to end after its current batch and wait for it, at most `timeout_s`."""
        self._stop.set()
        if self._task is not None:
            await self._wake()
            done, _ = await asyncio.wait({self._task}, timeout=timeout_s)
            if not done:
                log.warning("ingest loop did not stop within %.1f s; cancelling it", timeout_s)
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=timeout_s)
        await self._reader.aclose()

    async def catch_up(self) -> None:
        """Store every entry added to the stream before this call; raises Redis/SQLite errors.

        Concurrent callers share one drain: a drain that started after a call was made
        covers that call.
        """
        self._catch_up_calls += 1
        ticket = self._catch_up_calls
        self._waiting += 1  # from now on the loop does not start a blocking read
        try:
            await self._wake()
            async with asyncio.timeout(CATCH_UP_LOCK_TIMEOUT_S):
                await self._lock.acquire()
        finally:
            self._waiting -= 1
        try:
            if self._caught_up_through >= ticket:
                return
            covers = self._catch_up_calls
            try:
                await self._ensure_group()
                self._pending_possible = True  # see the class invariant on retried reads
                await self._drain_pending()
                await self._drain_new()
            except Exception as exc:
                self._note_failure(exc)
                raise
            self._caught_up_through = covers
        finally:
            self._lock.release()

    async def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                async with self._lock:
                    await self._ensure_group()
                    await self._drain_pending()
                    if time.monotonic() >= self._next_claim:
                        self._pending_possible = True  # next iteration re-reads our own pending
                        await self._claim()
                        self._next_claim = time.monotonic() + self._claim_every_s
                    if not self._waiting:
                        await self._blocking_read()
                if self._waiting:
                    await asyncio.sleep(YIELD_TO_CATCH_UP_S)  # let the waiting catch_up take the lock
                backoff = 0.1
            except Exception as exc:
                self._note_failure(exc)
                log.warning("ingesting conversations failed (retrying in %.1f s): %r", backoff, exc)
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
        log.info("ingest loop stopped: %s", self.stats)

    async def _blocking_read(self) -> None:
        if self._reader_id is None:
            self._reader_id = int(await self._reader.client_id())
        self._blocking = True
        try:
            await self._read(">", block_ms=self._block_ms, client=self._reader)
        finally:
            self._blocking = False

    async def _wake(self) -> None:
        """End the loop's blocking read now; if it is not blocked yet, it waits `block_ms` at most."""
        if self._blocking and self._reader_id is not None:
            with suppress(RedisError, OSError):
                await self._redis.client_unblock(self._reader_id)

    def _note_failure(self, exc: Exception) -> None:
        self._pending_possible = True  # the failed batch, if any, stays pending for us
        self._reader_id = None  # the reader may have reconnected under another id
        if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
            self._group_ready = False  # the stream or group was deleted: create it again

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self._redis.xgroup_create(self._stream, self._group, id="0", mkstream=True)
            log.info("created consumer group %s on %s", self._group, self._stream)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def _drain_pending(self) -> None:
        """Store and ack this consumer's own pending entries (those of a failed batch)."""
        start = "0"
        while self._pending_possible:
            read = await self._read(start, block_ms=None)
            if not read:
                self._pending_possible = False
            else:
                start = read[-1]

    async def _drain_new(self) -> None:
        """Read new entries without blocking up to the stream's last entry at the start."""
        last = await self._redis.xrevrange(self._stream, count=1)
        if not last or last[0][0] is None:
            return
        target = _id_key(last[0][0])
        while True:
            read = await self._read(">", block_ms=None)
            if not read or _id_key(read[-1]) >= target:
                return

    async def _read(
        self, start: str, *, block_ms: int | None, client: aioredis.Redis | None = None
    ) -> list[Any]:
        """One XREADGROUP from `start` ("0"-like: own pending; ">": new); store, ack; the ids read."""
        response = await (client or self._redis).xreadgroup(
            self._group, self.consumer, {self._stream: start}, count=self._batch, block=block_ms
        )
        entries = [entry for stream_entries in _stream_entries(response) for entry in stream_entries]
        await self._store_and_ack(entries)
        return [entry_id for entry_id, _ in entries]

    async def _claim(self) -> None:
        """Take over entries other consumers left pending longer than the claim idle time."""
        start: Any = "0-0"
        while True:
            response = await self._redis.xautoclaim(
                self._stream,
                self._group,
                self.consumer,
                min_idle_time=self._claim_idle_ms,
                start_id=start,
                count=self._batch,
            )
            start, entries = response[0], response[1]
            if entries:
                log.info("reclaimed %d pending conversation entr(ies) of other consumers", len(entries))
                await self._store_and_ack(entries)
            if _id_key(start) == (0, 0):
                return

    async def _store_and_ack(self, entries: list[Entry]) -> None:
        batch: list[store.ConversationRows] = []
        ingested_at = utc_now()
        for entry_id, fields in entries:
            try:
                batch.append(_decode(fields, ingested_at))
            except Exception as exc:
                self.stats.malformed += 1
                log.warning("skipping malformed conversation entry %r: %r", entry_id, exc)
        if batch:
            added = await store.store_conversations(self._db, batch)
            self.stats.stored += added
            self.stats.duplicates += len(batch) - added
            if added and self._on_stored is not None:
                self._on_stored()
        if entries:
            await self._redis.xack(self._stream, self._group, *[entry_id for entry_id, _ in entries])


def _decode(fields: Any, ingested_at: str) -> store.ConversationRows:
    if not fields or STREAM_FIELD not in fields:
        raise ValueError("entry has no field 'r' (it was trimmed from the stream, or is not a record)")
    return store.conversation_rows(ConversationRecord.unpack(fields[STREAM_FIELD]), ingested_at)


def _stream_entries(response: Any) -> list[list[Entry]]:
    """The entry lists of an XREADGROUP answer, whichever shape redis-py gives it."""
    if not response:
        return []
    if isinstance(response, dict):
        return [list(entries) for entries in response.values()]
    return [list(entries) for _, entries in response]


def _id_key(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)
