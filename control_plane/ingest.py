"""The conversation stream consumer: Redis stream `Keys.conversations` -> SQLite.

Every run's record arrives as one stream entry (field `r`, a packed `ConversationRecord`).
Three tasks, one job each, with a bounded queue of batches in front of the writer:

- the reader reads new entries through the consumer group (blocking, on a connection of
  its own) and hands each batch to the writer. At start and after any error it first
  takes up this consumer's own pending entries: the consumer name is the control plane's
  stable id (`FFAAS_CONTROL_PLANE_ID`), so a control plane restarted after a crash
  re-reads at once what it had read and not acknowledged. Its connection never sends a
  read again by itself (`shared.redis.without_retries`): a read whose answer was lost
  (Redis killed after running it) has already made its entries pending here, so it must
  fail and be followed by that re-read, not by a read of the next entries.
- the writer (`ingest_writer.py`), the only task that stores: one SQLite transaction per
  batch, then unreadable entries parked and the batch acknowledged; a failed batch is
  retried until it succeeds, and stays pending meanwhile.
- the upkeep (`stream_upkeep.py`) trims the stream, hands the writer entries pending here
  that no task holds (orphans: a lost answer, an interrupted catch-up), takes over
  entries idle at other consumers and removes consumers that are gone.

`catch_up` (a GET of an id not stored yet) hands the writer every entry added before the
call that may not be stored yet: the unread ones, and the ones pending at ANY consumer
(another control plane, a dead one, or this one's reader in the middle of a hand-over),
then waits until the writer is past them. Storing is idempotent (by conversation id), so
an entry handed over twice, or stored by two control planes, is stored once.

No task dies: every error is logged, kept as a `last_error` for `/status`, and retried
with a bounded backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from control_plane.conversation_stream import ConversationStream, id_key
from control_plane.ingest_writer import Backoff, BatchWriter, pause
from control_plane.storage.database import Database
from control_plane.stream_upkeep import StreamUpkeep
from shared.keys import Keys
from shared.redis import describe_failure, without_retries
from shared.timestamps import utc_now

log = logging.getLogger("ffaas.control_plane.ingest")

BLOCK_MS = 100
BATCH = 500
CATCH_UP_TIMEOUT_S = 5.0


class CatchUpFailed(Exception):
    """The stream cannot be caught up with now; the message says why."""


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
        self.consumer = consumer
        self.stream = ConversationStream(redis, keys, consumer)
        self.writer = BatchWriter(
            db, self.stream, dead_letter_max_length=dead_letter_max_length, on_stored=on_stored
        )
        self.upkeep = StreamUpkeep(
            self.stream,
            self.writer.hand_over,
            held=self.writer.held,
            claim_idle_ms=claim_idle_ms,
            max_stream_bytes=max_stream_bytes,
            batch=batch,
        )
        self._reader_client = without_retries(redis)  # its own connection, for the blocking read
        self._block_ms = block_ms
        self._batch = batch
        self.reader_last_error: str | None = None
        self._stop_reading = asyncio.Event()
        """Set: the reader and the upkeep end (GETs still catch up through the writer)."""
        self._stop = asyncio.Event()
        """Set: the plane is stopping; a failing batch is no longer retried."""
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the reader, the upkeep and the writer."""
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="ffaas-ingest-reader"),
            asyncio.create_task(self.upkeep.run(self._stop_reading), name="ffaas-ingest-upkeep"),
            asyncio.create_task(self.writer.run(self._stop), name="ffaas-ingest-writer"),
        ]

    async def stop_reading(self, timeout_s: float = 5.0) -> None:
        """End the background reader and upkeep (after the current read: at most `block_ms`)."""
        self._stop_reading.set()
        if self._tasks:
            await asyncio.wait(self._tasks[:2], timeout=timeout_s)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop reading, write what was handed over (at most `timeout_s`), then end every task.

        What is left unwritten stays pending under this consumer: the next start re-reads it."""
        self._stop.set()
        self.writer.fail_waiting("the control plane is stopping")
        await self.stop_reading(timeout_s)
        if self._tasks:
            with suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self.writer.finish()
                    await self._tasks[2]
            for task in self._tasks:
                if not task.done():
                    log.warning(
                        "ingest task %s did not stop within %.1f s; cancelling it", task.get_name(), timeout_s
                    )
                    task.cancel()
            await asyncio.wait(self._tasks, timeout=timeout_s)
        await self._reader_client.aclose()
        log.info("ingest stopped: %s; %s", self.writer.stats, self.upkeep.stats)

    async def catch_up(self) -> None:
        """Return once every entry added to the stream before this call is stored (or parked).

        Raises `CatchUpFailed` when that cannot be done now: Redis unavailable, the database
        failing, or more backlog than `CATCH_UP_TIMEOUT_S` allows."""
        failure = self.writer.failure
        if failure.done():
            raise CatchUpFailed(f"storing conversations is failing: {failure.result()}")
        try:
            async with asyncio.timeout(CATCH_UP_TIMEOUT_S):
                await self._hand_over_unstored()
                barrier = await self.writer.hand_over([])
                either: list[asyncio.Future[Any]] = [barrier.written, failure]
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError as exc:
            raise CatchUpFailed(
                "the control plane is still storing a backlog of conversations "
                f"(over {CATCH_UP_TIMEOUT_S:.0f} s)"
            ) from exc
        except (RedisError, OSError) as exc:
            raise CatchUpFailed(f"the conversation stream cannot be read: {describe_failure(exc)}") from exc
        if not barrier.written.done():
            raise CatchUpFailed(f"storing conversations is failing: {failure.result()}")

    def counters(self) -> dict[str, Any]:
        """This consumer's name and counters, for `/status`."""
        errors = (self.writer.stats.last_error, self.upkeep.stats.last_error, self.reader_last_error)
        return {
            "consumer": self.consumer,
            **vars(self.writer.stats),
            **vars(self.upkeep.stats),
            "queued_batches": self.writer.queued,
            "last_error": max(
                (error for error in errors if error), default=None
            ),  # each starts with its time
        }

    async def _hand_over_unstored(self) -> None:
        last = await self.stream.last_id()
        if last is None:
            return
        while True:  # the entries no consumer has read, up to the stream's end as of now
            entries = await self.stream.read(">", self._batch)
            if entries:
                await self.writer.hand_over(entries)
            if not entries or id_key(entries[-1].id) >= id_key(last):
                break
        async for ids in self.stream.pending_ids(self._batch):  # pending at any consumer
            unheld = [entry_id for entry_id in ids if entry_id not in self.writer.held]
            if unheld:
                await self.writer.hand_over(await self.stream.fetch(unheld))

    async def _read_loop(self) -> None:
        backoff = Backoff()
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
                    await self.writer.hand_over(entries)
                backoff.reset()
            except Exception as exc:
                self.reader_last_error = f"{utc_now()} reading the conversation stream: {exc!r}"
                log.warning("reading the conversation stream failed (retrying): %r", exc)
                own_pending_first = True  # a read whose answer was lost left entries pending here
                await pause(backoff.take(), self._stop_reading)

    async def _hand_over_own_pending(self) -> None:
        after: bytes | str = "0"
        while entries := await self.stream.read(after, self._batch):
            await self.writer.hand_over(entries)
            after = entries[-1].id
