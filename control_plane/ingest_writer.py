"""The one task that stores conversations: batches of stream entries -> SQLite, then acknowledged.

Whoever reads entries (the ingest's reader, a GET's catch-up, the upkeep's take-over)
hands them over (`hand_over`) to a bounded queue; the writer takes the batches in that
order. Per batch: decode each entry (an unreadable one is parked, with its reason; an
id whose entry was trimmed away is counted lost), store the readable ones in one SQLite
transaction, then park and acknowledge in one MULTI (`ConversationStream.settle`).

Invariants:
- An entry is acknowledged only once it is stored (committed) or parked.
- Batches are written in the order they were handed over: once a batch is `written`, so
  is every batch handed over before it (an empty batch is a barrier).
- A batch that fails is retried, with a bounded backoff, until it succeeds or the plane
  stops; it stays pending meanwhile (a restart re-reads it). From a failure until the next
  success, `failure` is done, holding the reason, so waiting reads can answer at once.
- `held` is the ids handed over and not finished: they are not handed over again. An
  entry handed over twice anyway is stored once (storage is idempotent).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from redis.exceptions import RedisError

from control_plane.conversation_stream import ConversationStream, Entry
from control_plane.storage import conversations as store
from control_plane.storage.database import Database
from shared.conversations import STREAM_FIELD, ConversationRecord
from shared.redis import describe_failure
from shared.timestamps import utc_now

log = logging.getLogger("ffaas.control_plane.ingest")

QUEUED_BATCHES = 4
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0


@dataclass
class WriterStats:
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
class Batch:
    entries: list[Entry]
    written: asyncio.Future[None]
    """Done once the batch is stored and acknowledged (and so is every batch before it)."""
    added: int = 0
    """Conversations this batch stored for the first time (kept across retries)."""


class Backoff:
    """Delays that double from `FIRST_BACKOFF_S` up to `MAX_BACKOFF_S`."""

    def __init__(self) -> None:
        self._next_s = FIRST_BACKOFF_S

    def reset(self) -> None:
        self._next_s = FIRST_BACKOFF_S

    def take(self) -> float:
        delay, self._next_s = self._next_s, min(self._next_s * 2, MAX_BACKOFF_S)
        return delay


async def pause(delay_s: float, until: asyncio.Event) -> None:
    """Wait `delay_s`, or less if `until` is set."""
    with suppress(TimeoutError):
        await asyncio.wait_for(until.wait(), delay_s)


class BatchWriter:
    def __init__(
        self,
        db: Database,
        stream: ConversationStream,
        *,
        dead_letter_max_length: int,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        """`on_stored`: called after each commit that stored new conversations."""
        self._db = db
        self._on_stored = on_stored
        self._stream = stream
        self._dead_letter_max_length = dead_letter_max_length
        self._queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=QUEUED_BATCHES)
        self.held: set[bytes] = set()
        self._failure: asyncio.Future[str] | None = None
        self.stats = WriterStats()

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    @property
    def failure(self) -> asyncio.Future[str]:
        """Done, with the reason, from a failed write until the next successful one."""
        if self._failure is None:
            self._failure = asyncio.get_running_loop().create_future()
        return self._failure

    def fail_waiting(self, reason: str) -> None:
        """Tell whoever waits on `failure` that nothing more will be written (the plane stops)."""
        if not self.failure.done():
            self.failure.set_result(reason)

    async def hand_over(self, entries: list[Entry]) -> Batch:
        """Queue the entries not already held (an empty batch is a barrier); waits while the queue is full."""
        fresh = [entry for entry in entries if entry.id not in self.held]
        batch = Batch(fresh, asyncio.get_running_loop().create_future())
        self.held.update(entry.id for entry in fresh)
        try:
            await self._queue.put(batch)
        except BaseException:
            self.held.difference_update(entry.id for entry in fresh)
            raise
        return batch

    async def finish(self) -> None:
        """Ask `run` to end once it has written what is queued."""
        await self._queue.put(None)

    async def run(self, stop: asyncio.Event) -> None:
        """The loop: write batches in order until `finish`; once `stop` is set, a failed batch is
        left pending (the next start re-reads it) instead of retried."""
        while (batch := await self._queue.get()) is not None:
            backoff = Backoff()
            try:
                while not await self._write(batch):
                    if stop.is_set():
                        break
                    await pause(backoff.take(), stop)
            finally:
                self.held.difference_update(entry.id for entry in batch.entries)

    async def _write(self, batch: Batch) -> bool:
        """Store, park and acknowledge the batch; False (logged) if it failed and must be retried."""
        rows, parked, trimmed = _decode(batch.entries)
        try:
            if rows:
                added = await store.store_conversations(self._db, rows)
                batch.added += added
                if added and self._on_stored is not None:
                    self._on_stored()
            ids = [entry.id for entry in batch.entries]
            await self._stream.settle(ids, parked, self._dead_letter_max_length)
        except Exception as exc:
            self.stats.last_error = f"{utc_now()} storing conversations: {exc!r}"
            log.warning("storing conversations failed (retrying): %r", exc)
            if not self.failure.done():
                self.failure.set_result(_reason(exc))
            return False
        self.stats.stored += batch.added
        self.stats.duplicates += len(rows) - batch.added
        self.stats.parked += len(parked)
        self.stats.lost_trimmed += len(trimmed)
        for entry, reason in parked:
            log.warning(
                "parked unreadable conversation entry %s in %s: %s",
                entry.id,
                self._stream.dead_letters,
                reason,
            )
        if trimmed:
            log.error(
                "%d conversation entries were trimmed before they were stored: %s", len(trimmed), trimmed[:5]
            )
        if self.failure.done():
            self._failure = None
            log.info("storing conversations works again")
        batch.written.set_result(None)
        return True


def _reason(exc: Exception) -> str:
    """Why writing failed, as a reader of the conversation may be told."""
    if isinstance(exc, RedisError | OSError):
        return describe_failure(exc)
    return f"{type(exc).__name__}: {exc}"


def _decode(
    entries: list[Entry],
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
