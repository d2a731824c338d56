"""The conversation recorder: puts each run's record on the Redis stream, or in the durable outbox,
before the run answers.

Invariants:
- `record` returns once the record is in Redis (its XADD answered) or fsynced in the
  outbox (`outbox.DiskOutbox`), so a conversation whose id a caller was given is never
  only in memory.  Runs finishing together share one pipelined round trip, or one
  fsync (group commit): the first waiting run writes the batch itself (no task switch:
  a loopback round trip is already ~100 µs here) while later ones queue for the next.
- A write to Redis has a deadline (FFAAS_RECORD_TIMEOUT_MS): a Redis that refuses or
  hangs costs a run at most that long (twice, for the runs that find it failing: see the
  held ids below); its record then goes to the outbox.  (A write
  cut off by the deadline may still land later: the record is then on the stream twice,
  which ingestion by conversation id absorbs.)
- While the outbox holds records, new ones queue behind them in the outbox, so the
  stream gets records in the order the runs finished.  A drainer task writes the outbox
  to Redis, oldest first, whenever Redis answers.
- Held ids are announced: as soon as Redis answers after a failure, and before draining,
  the drainer registers the id of every record the outbox holds (`Keys.held_conversation`
  -> this plane's id, expiring after `HELD_TTL_S`); records added while Redis answers
  are registered as they are added; each key is deleted once its record's XADD answered.
  The control plane answers a read of such an id "on its way" (503) instead of 404.
  The runs whose records miss Redis first (a Redis that is slow, not down: it may answer
  the control plane a moment later) also try to register their ids, within one more
  deadline, before they answer: so a read right after such an answer finds the id held
  whenever Redis takes it. Those runs cost at most twice FFAAS_RECORD_TIMEOUT_MS; the
  runs after them (the outbox is not empty) go to the outbox at once, as before.
- The stream is bounded (`XADD MAXLEN ~ stream_max_length`).
- The runs' own writes (`_flush`, one batch at a time) go over a connection of their own
  (`_RecordConnection`): the XADDs packed once per record and sent in one write, their answers read
  in order, with the client's retries on a broken connection; this costs about half of what
  `Redis.xadd` or a pipeline costs in Python per record (measured: 31 -> 14 µs of CPU).  The
  drainer and the held ids use the client's pool, as everything else does.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError, ResponseError

from data_plane.outbox import DiskOutbox
from shared.conversations import STREAM_FIELD, ConversationRecord
from shared.keys import Keys

log = logging.getLogger("ffaas.audit")

DRAIN_RETRY_S = 0.5
DRAIN_BATCH = 500
DRAIN_TIMEOUT_S = 5.0
"""Deadline of one drainer round trip (registering ids, or writing a batch)."""
REGISTER_BATCH = 1000
HELD_TTL_S = 900
CLOSE_DRAIN_S = 2.0

Entry = tuple[str, bytes]
"""A record to write: its conversation id and its packed bytes."""


class ConversationRecorder:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        outbox: DiskOutbox,
        *,
        plane_id: str,
        stream_max_length: int,
        record_timeout_ms: int,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._stream = keys.conversations
        self.outbox = outbox
        self._plane_id = plane_id
        self._max_length = stream_max_length
        self._timeout_ms = record_timeout_ms
        self._waiting: list[tuple[Entry, asyncio.Future[None]]] = []
        self._flushing = False
        self._handover: asyncio.Task[None] | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._registered = False
        """Every record the outbox holds has its id registered since Redis last failed."""
        self._connection = _RecordConnection(redis, self._stream, stream_max_length)

    def start(self) -> None:
        """Start writing what an earlier process left in the outbox (needs the running loop)."""
        if self.outbox:
            self._start_drainer()

    async def register_held_now(self, timeout_s: float) -> None:
        """Register the ids of the records the outbox holds, within `timeout_s` (before serving:
        a read of one of them is then answered "on its way", not 404); if Redis does not answer
        in time, the drainer registers them once it does."""
        if not self.outbox:
            return
        try:
            async with asyncio.timeout(timeout_s):
                await self._register_held()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("conversation outbox: the held ids are not registered yet (%r)", exc)

    async def record(self, record: ConversationRecord) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waiting.append(((record.id, record.pack()), done))
        if not self._flushing:
            await self._flush(until=done)
        await done

    async def drained(self) -> None:
        """Return once the outbox is empty: every record it held is on the stream."""
        while self.outbox:
            self._start_drainer()
            drainer = self._drainer
            assert drainer is not None
            await asyncio.wait({drainer})
            if not drainer.cancelled() and (exc := drainer.exception()) is not None:
                log.error("the conversation outbox drainer failed: %r; starting it again", exc)
                await asyncio.sleep(DRAIN_RETRY_S)

    async def close(self, *, remove_if_empty: bool = False) -> None:
        """Write what waits; give the drainer a moment; what is left stays in the outbox on disk."""
        if self._handover is not None:
            await asyncio.wait({self._handover}, timeout=5)
        if self._waiting and not self._flushing:
            await self._flush()
        if self._drainer is not None:
            await asyncio.wait({self._drainer}, timeout=CLOSE_DRAIN_S)
            self._drainer.cancel()
            await asyncio.gather(self._drainer, return_exceptions=True)
        await self._connection.close()
        await self.outbox.close(remove_if_empty=remove_if_empty)

    async def _flush(self, until: asyncio.Future[None] | None = None) -> None:
        """Write batches while records wait; a run writing its own batch stops once its record
        is written and hands the rest to a task (so its response is never held up by others'),
        as it does if it is cancelled midway (so no queued record is left waiting)."""
        self._flushing = True
        batch: list[tuple[Entry, asyncio.Future[None]]] = []
        try:
            while self._waiting and (until is None or not until.done()):
                batch, self._waiting = self._waiting, []
                try:
                    await self._write([entry for entry, _ in batch])
                except Exception as exc:  # neither Redis nor the disk: a bug; fail these runs, never loop
                    log.exception("recording %d conversation records failed", len(batch))
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    batch = []
                    continue
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
                batch = []
        finally:
            self._waiting = batch + self._waiting
            self._flushing = bool(self._waiting)
            if self._waiting:
                self._handover = asyncio.get_running_loop().create_task(self._flush())

    async def _write(self, entries: list[Entry]) -> None:
        """To Redis within the deadline, else (or while the outbox holds records) to the outbox."""
        missed = False
        if not self.outbox:
            try:
                async with asyncio.timeout(self._timeout_ms / 1000):
                    await self._connection.xadd([packed for _, packed in entries])
                return
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning(
                    "conversation records did not reach Redis within %d ms (FFAAS_RECORD_TIMEOUT_MS): "
                    "%s; keeping them in the outbox",
                    self._timeout_ms,
                    exc.__class__.__name__ if isinstance(exc, TimeoutError) else exc,
                )
                self._registered, missed = False, True
        await self.outbox.append(entries)
        if self._registered or missed:  # missed: a slow Redis may still take the held ids at once
            try:
                async with asyncio.timeout(self._timeout_ms / 1000):
                    await self._register([conversation_id for conversation_id, _ in entries])
            except (RedisError, OSError, TimeoutError):
                self._registered = False  # the drainer registers them once Redis answers
        self._start_drainer()

    async def _xadd(self, records: list[bytes]) -> None:
        """XADD `records` in one round trip."""
        if len(records) == 1:
            await self._redis.xadd(
                self._stream, {STREAM_FIELD: records[0]}, maxlen=self._max_length, approximate=True
            )
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for packed in records:
                pipe.xadd(self._stream, {STREAM_FIELD: packed}, maxlen=self._max_length, approximate=True)
            await pipe.execute()

    async def _register(self, conversation_ids: list[str]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for conversation_id in conversation_ids:
                pipe.set(self._keys.held_conversation(conversation_id), self._plane_id, ex=HELD_TTL_S)
            await pipe.execute()

    async def _unregister(self, conversation_ids: list[str]) -> None:
        """Delete the held-id keys of records now on the stream; only once their XADD answered (in
        one pipeline, a DEL runs even when an XADD before it fails).  A key left behind expires;
        until then a read of its id catches up with the stream first, and finds the record."""
        held = [self._keys.held_conversation(conversation_id) for conversation_id in conversation_ids]
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await self._redis.delete(*held)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("could not delete %d held conversation ids (they expire): %r", len(held), exc)

    def _start_drainer(self) -> None:
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        failures = 0
        while self.outbox:
            try:
                if not self._registered:
                    await self._register_held()
                batch = self.outbox.oldest(DRAIN_BATCH)
                async with asyncio.timeout(DRAIN_TIMEOUT_S):
                    await self._xadd([record.packed for record in batch])
                self.outbox.remove(batch)
                failures = 0
                await self._unregister([record.conversation_id for record in batch])
            except (RedisError, OSError, TimeoutError) as exc:
                if not isinstance(exc, ResponseError):  # Redis answered (an error): ids still hold
                    self._registered = False
                failures += 1
                if failures == 1:
                    log.warning("conversation outbox: Redis unavailable (%r); retrying", exc)
                await asyncio.sleep(DRAIN_RETRY_S)
        log.info("conversation outbox drained to Redis")

    async def _register_held(self) -> None:
        """Register the id of every record held (also those added meanwhile), then mark it done."""
        seq, registered = -1, 0
        while batch := self.outbox.after(seq, REGISTER_BATCH):
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await self._register([record.conversation_id for record in batch])
            seq, registered = batch[-1].seq, registered + len(batch)
        self._registered = True
        log.info(
            "Redis answers: registered the ids of %d conversation records held in the outbox; "
            "writing them to the stream",
            registered,
        )


class _RecordConnection:
    """XADDs of records over one connection of the client's pool, kept for them: a batch is packed
    by hand (the command's head is built once), sent in one write and its answers read in order.

    Failures are as with `Redis.xadd`: an error answer raises `ResponseError` (after every answer
    of the batch was read, so the connection stays in step); a broken connection is retried on a
    fresh one as the client's `Retry` says; anything else, cancellation included (the record
    deadline), closes the connection, which reconnects on the next batch.  Used by one task at a
    time (the recorder's flush)."""

    def __init__(self, redis: aioredis.Redis, stream: str, max_length: int) -> None:
        self._pool = redis.connection_pool
        self._connection: AbstractConnection | None = None
        arguments = [b"XADD", stream.encode(), b"MAXLEN", b"~", str(max_length).encode(), b"*", STREAM_FIELD]
        head = [b"*%d\r\n" % (len(arguments) + 1)]
        head += [b"$%d\r\n%s\r\n" % (len(argument), argument) for argument in arguments]
        self._head = b"".join(head)

    async def xadd(self, records: list[bytes]) -> None:
        if self._connection is None:
            self._connection = await self._pool.get_connection()
        connection = self._connection
        chunks: list[bytes] = []
        for packed in records:
            chunks += (self._head, b"$%d\r\n" % len(packed), packed, b"\r\n")
        await connection.retry.call_with_retry(
            lambda: self._send(connection, chunks, len(records)),
            lambda error: self._failed(connection, error),
        )

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._pool.release(connection)

    @staticmethod
    async def _send(connection: AbstractConnection, chunks: list[bytes], answers: int) -> None:
        await connection.send_packed_command(chunks)
        error: ResponseError | None = None
        for _ in range(answers):
            try:
                await connection.read_response()
            except ResponseError as exc:
                error = error or exc
        if error is not None:
            raise error

    @staticmethod
    async def _failed(connection: AbstractConnection, error: BaseException) -> None:
        """Before a retry (the client's `Retry` retries only its errors, a broken connection):
        drop the connection; the next send connects again."""
        await connection.disconnect()
