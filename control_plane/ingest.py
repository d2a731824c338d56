"""The conversation stream consumer: Redis stream `Keys.conversations` -> SQLite.

Every run's record arrives as one stream entry (field `r`, a packed `ConversationRecord`).
Three tasks, one job each, and a bounded queue of batches between them:

- the reader reads new entries through the consumer group (blocking, on a connection of
  its own) and hands each batch to the writer. At start and after any error it first
  takes up this consumer's own pending entries: the consumer name is the control plane's
  stable id, so a control plane restarted after a crash re-reads at once what it had read
  and not acknowledged.
- the writer, the only task that stores, takes the batches in order: per batch one SQLite
  transaction, then unreadable entries are parked in the dead-letter stream and the batch
  acknowledged (`ConversationStream.settle`). A batch that fails is retried, with a
  bounded backoff, until it succeeds or the plane stops; meanwhile it stays pending, so
  nothing is acknowledged unstored, and a restart re-reads it.
- the upkeep trims the stream (`stream_upkeep.py`), takes over entries idle at other
  consumers and removes consumers that are gone.

`catch_up` (a GET of an id not stored yet) hands the writer every entry added before the
call that may not be stored yet: the unread ones, and the ones pending at ANY consumer
(another control plane, a dead one, or this one's reader in the middle of a hand-over),
then waits until the writer is past them. Storing is idempotent (by conversation id), so
an entry handed over twice, or stored by two control planes, is stored once.

Invariants:
- An entry is acknowledged only once it is stored (committed) or parked.
- The writer takes batches in the order they were handed over: once a batch is written,
  so is every batch handed over before it.
- `_held` is the ids handed to the writer and not finished: nobody hands them over again.
- No task dies: every error is logged, kept in `stats.last_error` and retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from control_plane.conversation_stream import ConversationStream, Entry, id_key
from control_plane.storage import conversations as store
from control_plane.storage.database import Database
from control_plane.stream_upkeep import StreamUpkeep
from shared.conversations import STREAM_FIELD, ConversationRecord
from shared.keys import Keys
from shared.timestamps import utc_now

log = logging.getLogger("ffaas.control_plane.ingest")

BLOCK_MS = 100
BATCH = 500
QUEUED_BATCHES = 4
MAX_BACKOFF_S = 5.0
CATCH_UP_TIMEOUT_S = 5.0


class CatchUpFailed(Exception):
    """The stream cannot be caught up with now; the message says why."""


@dataclass
class IngestStats:
    stored: int = 0
    """Conversations written for the first time."""
    duplicates: int = 0
    """Entries whose conversation was already stored (redeliveries, catch-ups)."""
    parked: int = 0
    """Unreadable entries moved to the dead-letter stream."""
    lost_trimmed: int = 0
    """Pending entries whose data was trimmed from the stream before they were stored."""
    last_error: str | None = None


@dataclass
class _Batch:
    entries: list[Entry]
    written: asyncio.Future[None]
    """Done once the batch is stored and acknowledged (and so is every batch before it)."""
    added: int = 0
    """Conversations this batch stored for the first time (kept across retries)."""


@dataclass
class _Backoff:
    delay_s: float = 0.1
    next_s: float = field(init=False, default=0.1)

    def reset(self) -> None:
        self.next_s = self.delay_s

    def take(self) -> float:
        delay, self.next_s = self.next_s, min(self.next_s * 2, MAX_BACKOFF_S)
        return delay


class Ingester:
    def __init__(
        self,
        db: Database,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        consumer: str,
        claim_idle_ms: int,
        max_stream_bytes: int,
        dead_letter_max_length: int,
        block_ms: int = BLOCK_MS,
        batch: int = BATCH,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        """`on_stored`: called after each commit that stored new conversations (the live feed's nudge)."""
        self._db = db
        self._on_stored = on_stored
        self.stream = ConversationStream(redis, keys, consumer)
        self.consumer = consumer
        self._reader_client = redis.client()  # one dedicated connection, for the blocking read
        self._dead_letter_max_length = dead_letter_max_length
        self._block_ms = block_ms
        self._batch = batch
        self.stats = IngestStats()
        self._stop_reading = asyncio.Event()
        """Set: the reader and the upkeep end (GETs still catch up through the writer)."""
        self._stop = asyncio.Event()
        """Set: the plane is stopping; a failing batch is no longer retried."""
        self._queue: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=QUEUED_BATCHES)
        self._held: set[bytes] = set()
        self._write_failure: asyncio.Future[str] | None = None
        """Done, with the reason, from a failed write until the next successful one."""
        self.upkeep = StreamUpkeep(
            self.stream,
            self._hand_over,
            claim_idle_ms=claim_idle_ms,
            max_stream_bytes=max_stream_bytes,
            batch=batch,
        )
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the reader, the writer and the upkeep."""
        self._write_failure = asyncio.get_running_loop().create_future()
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="ffaas-ingest-reader"),
            asyncio.create_task(self.upkeep.run(self._stop_reading), name="ffaas-ingest-upkeep"),
            asyncio.create_task(self._write_loop(), name="ffaas-ingest-writer"),
        ]

    async def stop_reading(self, timeout_s: float = 5.0) -> None:
        """End the background reader and upkeep (after the current read, at most `block_ms`)."""
        self._stop_reading.set()
        if self._tasks:
            await asyncio.wait(self._tasks[:2], timeout=timeout_s)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop reading, write what was handed over (at most `timeout_s`), then end every task.

        What is left unwritten stays pending under this consumer: the next start re-reads it."""
        self._stop.set()
        self._fail_waiting("the control plane is stopping")
        await self.stop_reading(timeout_s)
        if self._tasks:
            writer = self._tasks[2]
            with suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._queue.put(None)
                    await writer
            for task in self._tasks:
                if not task.done():
                    log.warning(
                        "ingest task %s did not stop within %.1f s; cancelling it", task.get_name(), timeout_s
                    )
                    task.cancel()
            await asyncio.wait(self._tasks, timeout=timeout_s)
        await self._reader_client.aclose()
        log.info("ingest stopped: %s", self.stats)

    async def catch_up(self) -> None:
        """Return once every entry added to the stream before this call is stored (or parked).

        Raises `CatchUpFailed` when that cannot be done now: Redis unavailable, the database
        failing, or more backlog than `CATCH_UP_TIMEOUT_S` allows."""
        failure = self._write_failure
        if failure is None or failure.done():
            raise CatchUpFailed(
                f"storing conversations is failing: {failure.result() if failure else 'not started'}"
            )
        try:
            async with asyncio.timeout(CATCH_UP_TIMEOUT_S):
                await self._hand_over_unstored()
                barrier = await self._hand_over([])
                either: list[asyncio.Future[Any]] = [barrier.written, failure]
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError as exc:
            raise CatchUpFailed(
                "the control plane is still storing a backlog of conversations "
                f"(over {CATCH_UP_TIMEOUT_S:.0f} s)"
            ) from exc
        except (RedisError, OSError) as exc:
            raise CatchUpFailed(
                "the conversation stream cannot be read: Redis unavailable (FFAAS_REDIS_URL)"
            ) from exc
        if not barrier.written.done():
            raise CatchUpFailed(f"storing conversations is failing: {failure.result()}")

    def counters(self) -> dict[str, Any]:
        """This consumer's name and counters, for `/status`."""
        counters: dict[str, Any] = {"consumer": self.consumer, **vars(self.upkeep.stats), **vars(self.stats)}
        counters["last_error"] = self.stats.last_error or self.upkeep.stats.last_error
        return counters

    async def _hand_over_unstored(self) -> None:
        last = await self.stream.last_id()
        if last is None:
            return
        while True:  # the entries no consumer has read, up to the stream's end as of now
            entries = await self.stream.read(">", self._batch)
            if entries:
                await self._hand_over(entries)
            if not entries or id_key(entries[-1].id) >= id_key(last):
                break
        async for ids in self.stream.pending_ids(self._batch):  # pending at any consumer
            unheld = [entry_id for entry_id in ids if entry_id not in self._held]
            if unheld:
                await self._hand_over(await self.stream.fetch(unheld))

    async def _hand_over(self, entries: list[Entry]) -> _Batch:
        """Queue the entries not already held for the writer (an empty batch is a barrier)."""
        fresh = [entry for entry in entries if entry.id not in self._held]
        batch = _Batch(fresh, asyncio.get_running_loop().create_future())
        self._held.update(entry.id for entry in fresh)
        try:
            await self._queue.put(batch)
        except BaseException:
            self._held.difference_update(entry.id for entry in fresh)
            raise
        return batch

    async def _read_loop(self) -> None:
        backoff = _Backoff()
        own_pending_first = True
        while not self._stop_reading.is_set():
            try:
                if own_pending_first:
                    await self._hand_over_own_pending()
                    own_pending_first = False
                entries = await self.stream.read(
                    ">", self._batch, block_ms=self._block_ms, client=self._reader_client
                )
                if entries:
                    await self._hand_over(entries)
                backoff.reset()
            except Exception as exc:
                self._note_error("reading the conversation stream", exc)
                own_pending_first = True  # a read whose answer was lost left entries pending here
                await self._pause(backoff.take(), self._stop_reading)

    async def _hand_over_own_pending(self) -> None:
        after: bytes | str = "0"
        while entries := await self.stream.read(after, self._batch):
            await self._hand_over(entries)
            after = entries[-1].id

    async def _write_loop(self) -> None:
        while (batch := await self._queue.get()) is not None:
            backoff = _Backoff()
            try:
                while not await self._write(batch):
                    if self._stop.is_set():
                        break  # left pending here: the next start re-reads it
                    await self._pause(backoff.take(), self._stop)
            finally:
                self._held.difference_update(entry.id for entry in batch.entries)

    async def _write(self, batch: _Batch) -> bool:
        """Store, park and acknowledge the batch; False (logged) if it failed and must be retried."""
        rows, parked, trimmed = self._decode(batch.entries)
        try:
            if rows:
                added = await store.store_conversations(self._db, rows)
                batch.added += added
                if added and self._on_stored is not None:
                    self._on_stored()
            await self.stream.settle(
                [entry.id for entry in batch.entries], parked, self._dead_letter_max_length
            )
        except Exception as exc:
            self._note_error("storing conversations", exc)
            assert self._write_failure is not None
            if not self._write_failure.done():
                self._write_failure.set_result(f"{type(exc).__name__}: {exc}")
            return False
        self.stats.stored += batch.added
        self.stats.duplicates += len(rows) - batch.added
        self.stats.parked += len(parked)
        self.stats.lost_trimmed += len(trimmed)
        for entry, reason in parked:
            log.warning(
                "parked unreadable conversation entry %s in %s: %s",
                entry.id,
                self.stream.dead_letters,
                reason,
            )
        if trimmed:
            log.error(
                "%d conversation entries were trimmed from the stream before they were stored: %s",
                len(trimmed),
                trimmed[:5],
            )
        if self._write_failure is not None and self._write_failure.done():
            self._write_failure = asyncio.get_running_loop().create_future()
            log.info("storing conversations works again")
        batch.written.set_result(None)
        return True

    def _decode(
        self, entries: list[Entry]
    ) -> tuple[list[store.ConversationRows], list[tuple[Entry, str]], list[bytes]]:
        """The rows to store, the entries to park (with why) and the ids whose entry was trimmed."""
        rows: list[store.ConversationRows] = []
        parked: list[tuple[Entry, str]] = []
        trimmed: list[bytes] = []
        ingested_at = utc_now()
        for entry in entries:
            if entry.fields is None:
                trimmed.append(entry.id)
            elif STREAM_FIELD not in entry.fields:
                parked.append((entry, f"the entry has no field {STREAM_FIELD.decode()!r}"))
            else:
                try:
                    record = ConversationRecord.unpack(entry.fields[STREAM_FIELD])
                    rows.append(store.conversation_rows(record, ingested_at))
                except ValueError as exc:
                    parked.append((entry, str(exc)))
        return rows, parked, trimmed

    def _note_error(self, what: str, exc: Exception) -> None:
        self.stats.last_error = f"{what}: {exc!r}"
        log.warning("%s failed (retrying): %r", what, exc)

    def _fail_waiting(self, reason: str) -> None:
        if self._write_failure is not None and not self._write_failure.done():
            self._write_failure.set_result(reason)

    async def _pause(self, delay_s: float, until: asyncio.Event) -> None:
        """Wait `delay_s`, or less if `until` is set."""
        with suppress(TimeoutError):
            await asyncio.wait_for(until.wait(), delay_s)
