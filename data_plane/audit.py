"""The conversation recorder: sends each run's record to the Redis stream before the run answers.

Invariants:
- `record` returns once the record is in Redis (its XADD answered), so a
  conversation is readable from the control plane as soon as the run's
  response has been sent.  Runs finishing together share one pipelined round
  trip (group commit): the first waiting run writes the batch itself (no task
  switch: a loopback round trip is already ~100 µs here) while later ones
  queue for the next batch.
- If Redis cannot be reached, records go to an in-memory outbox, in order, and
  `record` returns at once (runs keep being served); a drainer task writes the
  outbox to Redis as soon as it answers again.  While the outbox is not empty,
  new records queue behind it, so order is kept.  The outbox holds at most
  `outbox_limit` records; past that the oldest are dropped and counted.
- The stream is bounded (`XADD MAXLEN ~ stream_max_length`).
"""

from __future__ import annotations

import asyncio
import collections
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shared.conversations import STREAM_FIELD, ConversationRecord
from shared.keys import Keys

log = logging.getLogger("ffaas.audit")

DRAIN_RETRY_S = 0.5
DRAIN_BATCH = 500


class ConversationRecorder:
    def __init__(
        self, redis: aioredis.Redis, keys: Keys, *, stream_max_length: int, outbox_limit: int
    ) -> None:
        self._redis = redis
        self._stream = keys.conversations
        self._max_length = stream_max_length
        self._outbox_limit = outbox_limit
        self._waiting: list[tuple[bytes, asyncio.Future[None]]] = []
        self._flushing = False
        self._handover: asyncio.Task[None] | None = None
        self._outbox: collections.deque[bytes] = collections.deque()
        self._drainer: asyncio.Task[None] | None = None
        self.dropped = 0

    @property
    def outbox_size(self) -> int:
        return len(self._outbox)

    async def record(self, record: ConversationRecord) -> None:
        packed = record.pack()
        if self._outbox:
            self._to_outbox([packed])
            return
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((packed, done))
        if not self._flushing:
            await self._flush(until=done)
        await done

    async def close(self) -> None:
        """Flush what can be flushed; report what is still in the outbox."""
        if self._handover is not None:
            await asyncio.wait({self._handover}, timeout=5)
        if self._waiting and not self._flushing:
            await self._flush()
        if self._outbox:
            await self._drain_once()
        if self._drainer is not None:
            self._drainer.cancel()
        if self._outbox:
            log.error(
                "%d conversation records could not reach Redis and are lost at shutdown", len(self._outbox)
            )

    async def _flush(self, until: asyncio.Future[None] | None = None) -> None:
        """Write batches while records wait; a run writing its own batch stops once its record
        is written and hands the rest to a task (so its response is never held up by others'),
        as it does if it is cancelled midway (so no queued record is left waiting)."""
        self._flushing = True
        batch: list[tuple[bytes, asyncio.Future[None]]] = []
        try:
            while self._waiting and (until is None or not until.done()):
                batch, self._waiting = self._waiting, []
                try:
                    await self._xadd([packed for packed, _ in batch])
                except (RedisError, OSError) as exc:
                    log.warning(
                        "Redis unavailable for conversation records (%s); keeping them in the outbox", exc
                    )
                    self._to_outbox([packed for packed, _ in batch])
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
                batch = []
        finally:
            self._waiting = batch + self._waiting
            self._flushing = bool(self._waiting)
            if self._waiting:
                self._handover = asyncio.get_running_loop().create_task(self._flush())

    async def _xadd(self, records: list[bytes]) -> None:
        if len(records) == 1:
            await self._redis.xadd(
                self._stream, {STREAM_FIELD: records[0]}, maxlen=self._max_length, approximate=True
            )
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for packed in records:
                pipe.xadd(self._stream, {STREAM_FIELD: packed}, maxlen=self._max_length, approximate=True)
            await pipe.execute()

    def _to_outbox(self, records: list[bytes]) -> None:
        self._outbox.extend(records)
        overflow = len(self._outbox) - self._outbox_limit
        if overflow > 0:
            for _ in range(overflow):
                self._outbox.popleft()
            self.dropped += overflow
            log.error(
                "conversation outbox full (FFAAS_OUTBOX_MAX_RECORDS=%d): dropped %d records",
                self._outbox_limit,
                overflow,
            )
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self._outbox:
            if not await self._drain_once():
                await asyncio.sleep(DRAIN_RETRY_S)
        log.info("conversation outbox drained to Redis")

    async def _drain_once(self) -> bool:
        batch = [self._outbox[index] for index in range(min(DRAIN_BATCH, len(self._outbox)))]
        try:
            await self._xadd(batch)
        except (RedisError, OSError):
            return False
        for _ in batch:
            self._outbox.popleft()
        return True
