"""Publishing processors to Redis, always AFTER the SQLite commit that decided it.

The processor half of `publisher.py` (which owns one of these as `Publisher.processors`
and lends it `announce`). For one changed processor (`publish`):
1. its runnable JavaScript goes to `keys.processor_code(code_hash)` as UTF-8 (SET NX: a
   hash names its code forever);
2. the `keys.processors` hash gets the processor's `ProcessorRoute` (HSET), or loses it
   (HDEL) when the processor is gone; the route is read from SQLite after the commit,
   under a lock, so concurrent saves cannot leave a stale route, and code missing from
   Redis is refilled from SQLite first, so a route never names code Redis lacks;
3. `announce` PUBLISHes `RouteEvent(processor_id=...)` and waits for the data planes'
   acks exactly as for endpoints; if Redis fails it answers 503 and reconciles later.

`reconcile` (called by `Publisher.reconcile`, at startup and after a failed publish)
makes `keys.processors` match SQLite: every stored processor's code and route, no
stale entries. The caller then announces `RouteEvent(endpoint_id="*")`.

Code that neither a processor nor any of its versions refers to any more (its processors were
deleted) is garbage: after each publish, and at start-up, `collect_garbage` deletes it from
SQLite and Redis (see `garbage.py`).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

import redis.asyncio as aioredis

from control_plane import garbage
from control_plane.storage import processors as processor_store
from control_plane.storage.database import Database
from shared.events import ProcessorRoute, RouteEvent
from shared.keys import Keys

log = logging.getLogger("ffaas.control_plane.publisher")


class Announce(Protocol):
    """`Publisher.announce`: run the writes, PUBLISH the event, await the acks; 503 if Redis fails."""

    def __call__(
        self, event: RouteEvent, *, change: str, write: Callable[[], Awaitable[None]]
    ) -> Awaitable[int]: ...


class ProcessorPublisher:
    def __init__(self, db: Database, redis: aioredis.Redis, keys: Keys, *, announce: Announce) -> None:
        self._db = db
        self._redis = redis
        self._keys = keys
        self._announce = announce
        self._lock = asyncio.Lock()

    async def publish(
        self, processor_id: str, *, change: str, code: processor_store.RunnableCode | None = None
    ) -> None:
        """Publish the stored state of `processor_id`; `code` is the runnable code just saved.

        `change` names what was stored ("processor <id>", ...) for the 503 message if Redis fails.
        """
        route: ProcessorRoute | None = None

        async def write() -> None:
            nonlocal route
            if code is not None:
                await self._redis.set(self._keys.processor_code(code.code_hash), code.js.encode(), nx=True)
            route = await self._write_route(processor_id)

        event = RouteEvent(event_id=uuid.uuid4().hex, processor_id=processor_id)
        receivers = await self._announce(event, change=change, write=write)
        log.info(
            "published processor %s (code %s) to %d data plane(s)",
            processor_id,
            route.code_hash if route else "deleted",
            receivers,
        )
        await self.collect_garbage()

    async def collect_garbage(self, *, sweep: bool = False) -> None:
        """Delete code no processor refers to, from SQLite and then Redis; `sweep` also deletes
        code keys in Redis that SQLite does not refer to (start-up)."""
        async with self._lock:
            try:
                deleted = await processor_store.delete_unreferenced_code(self._db)
                referenced = await processor_store.referenced_code_hashes(self._db) if sweep else None
            except sqlite3.Error as exc:  # the change itself is stored and published: collect later
                log.warning("garbage collection failed (retried at the next change or start): %s", exc)
                return
            await garbage.delete_bytes(self._redis, self._keys.processor_code, deleted, referenced=referenced)

    async def reconcile(self) -> None:
        """Make `keys.processors` and the code keys match SQLite; announces nothing itself."""
        processors = await processor_store.list_processors(self._db)
        async with self._lock:
            for processor in processors:
                await self._ensure_code(processor.code_hash)
                await self._redis.hset(self._keys.processors, processor.id, _route(processor).pack())
            stored = {processor.id for processor in processors}
            published = [_text(key) for key in await self._redis.hkeys(self._keys.processors)]
            stale = [processor_id for processor_id in published if processor_id not in stored]
            if stale:
                await self._redis.hdel(self._keys.processors, *stale)
        log.info(
            "reconciled Redis: %d processor(s) published, %d stale processor(s) removed",
            len(processors),
            len(stale),
        )

    async def _write_route(self, processor_id: str) -> ProcessorRoute | None:
        async with self._lock:
            processor = await processor_store.get_processor(self._db, processor_id)
            if processor is None:
                await self._redis.hdel(self._keys.processors, processor_id)
                return None
            await self._ensure_code(processor.code_hash)
            route = _route(processor)
            await self._redis.hset(self._keys.processors, processor_id, route.pack())
            return route

    async def _ensure_code(self, code_hash: str) -> None:
        """Make the runnable code available in Redis, refilling it from SQLite if missing."""
        key = self._keys.processor_code(code_hash)
        if await self._redis.exists(key):
            return
        js = await processor_store.load_code(self._db, code_hash)
        if js is None:
            raise RuntimeError(f"code {code_hash} is referenced by a processor but not stored")
        await self._redis.set(key, js.encode(), nx=True)


def _route(processor: processor_store.Processor) -> ProcessorRoute:
    return ProcessorRoute(
        processor.id,
        processor.name,
        processor.language,
        processor.runtime,
        processor.code_hash,
        version_id=processor.active_version_id,
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
