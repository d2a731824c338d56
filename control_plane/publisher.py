"""Publishing endpoint state to Redis, always AFTER the SQLite commit that decided it.

For one changed endpoint (`publish_endpoint`):
1. the module bytes go to `keys.module(hash)` (SET NX: a hash names its bytes forever);
2. the `keys.routes` hash gets the endpoint's `EndpointRoute` (HSET), or loses it (HDEL)
   when the endpoint is gone or has no active deploy; the route is read from SQLite
   after the commit, under a lock, so concurrent changes cannot leave a stale route;
3. a `RouteEvent` is PUBLISHed on `keys.events`; PUBLISH answers how many subscribers,
   i.e. data planes, received it;
4. each data plane RPUSHes to `keys.acks(event_id)` once it serves the new state; we
   BLPOP that many acks within the deploy ack timeout, then DEL the key. A timeout is
   logged, not an error: Redis holds the state and a late data plane catches up.
If Redis fails midway, the change (already committed) answers 503 and a background
task reconciles Redis with SQLite until it succeeds, so data planes converge.
So once a change's response is back, every live data plane serves it (read-your-writes).

Processors are published the same way by `self.processors` (`processor_publisher.py`),
through `announce` (steps 3 and 4, and the 503 + background reconcile).

`reconcile` makes Redis match SQLite at startup (endpoints, then processors), then tells
every data plane to re-read every endpoint and processor (`RouteEvent(endpoint_id="*")`).

Module bytes no deploy refers to any more (their endpoints were deleted) are garbage: after an
endpoint's route is removed, and at start-up, `collect_garbage` deletes them from SQLite and
Redis (see `garbage.py`).  Bytes of deploys in any endpoint's history stay: rollback needs them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from control_plane import garbage
from control_plane.processor_publisher import ProcessorPublisher
from control_plane.storage import endpoints as endpoint_store
from control_plane.storage.database import Database
from control_plane.storage.modules import delete_unreferenced_modules, load_module, referenced_module_hashes
from shared.events import EndpointRoute, RouteEvent
from shared.keys import Keys
from shared.redis import unavailable

log = logging.getLogger("ffaas.control_plane.publisher")

EVERY_ENDPOINT = "*"
ACK_SLICE_S = 1.0
RECONCILE_RETRY_S = (0.5, 1.0, 2.0, 5.0)


class Publisher:
    def __init__(
        self,
        db: Database,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        ack_timeout_ms: int,
        redis_timeout_ms: int = 2000,
    ) -> None:
        self._db = db
        self._redis = redis
        self._keys = keys
        self._ack_timeout_s = ack_timeout_ms / 1000
        self._ack_slice_s = min(ACK_SLICE_S, redis_timeout_ms / 2000)
        """One BLPOP's server-side wait: well under the client's command timeout."""
        self._route_lock = asyncio.Lock()
        self._reconciler: asyncio.Task[None] | None = None
        self.processors = ProcessorPublisher(db, redis, keys, announce=self.announce)

    async def publish_endpoint(
        self, endpoint_id: str, *, change: str, module: tuple[str, bytes] | None = None
    ) -> None:
        """Publish the stored state of `endpoint_id`; `module` is (hash, bytes) of a new deploy.

        `change` names what was stored ("deploy <id>", ...) for the 503 message if Redis fails.
        """
        route: endpoint_store.ActiveRoute | None = None

        async def write() -> None:
            nonlocal route
            if module is not None:
                module_hash, data = module
                await self._redis.set(self._keys.module(module_hash), data, nx=True)
            route = await self._write_route(endpoint_id)

        event = RouteEvent(event_id=uuid.uuid4().hex, endpoint_id=endpoint_id)
        receivers = await self.announce(event, change=change, write=write)
        log.info(
            "published endpoint %s (deploy %s) to %d data plane(s)",
            endpoint_id,
            route.deploy_id if route else "none",
            receivers,
        )
        if route is None:  # the endpoint is gone: its modules may be garbage now
            await self.collect_garbage()

    async def collect_garbage(self, *, sweep: bool = False) -> None:
        """Delete module bytes no deploy refers to, from SQLite and then Redis; `sweep` also
        deletes module keys in Redis that SQLite does not refer to (start-up)."""
        async with self._route_lock:
            try:
                deleted = await delete_unreferenced_modules(self._db)
                referenced = await referenced_module_hashes(self._db) if sweep else None
            except sqlite3.Error as exc:  # the change itself is stored and published: collect later
                log.warning("garbage collection failed (retried at the next change or start): %s", exc)
                return
            await garbage.delete_bytes(self._redis, self._keys.module, deleted, referenced=referenced)

    async def announce(self, event: RouteEvent, *, change: str, write: Callable[[], Awaitable[None]]) -> int:
        """Run `write` (the Redis writes of a committed change), PUBLISH `event`, await the acks.

        Answers how many data planes received the event. If Redis fails, raises `Unavailable`
        naming `change` and reconciles in the background until Redis answers.
        """
        try:
            await write()
            receivers = int(await self._redis.publish(self._keys.events, event.pack()))
            await self._await_acks(event, receivers)
        except (RedisError, OSError) as exc:
            log.error("publishing %s failed: %r; Redis will be reconciled once it answers", change, exc)
            self._reconcile_in_background()
            raise unavailable(f"{change} is stored but could not be published", exc) from exc
        return receivers

    async def publish_module(self, module_hash: str, data: bytes, *, change: str) -> None:
        """Put a module's bytes in Redis without touching any route: a deploy stored without
        activation, which data planes fetch by hash when it is replayed or activated."""
        try:
            await self._redis.set(self._keys.module(module_hash), data, nx=True)
        except (RedisError, OSError) as exc:
            log.error("publishing %s failed: %r", change, exc)
            raise unavailable(f"{change} is stored but could not be published", exc) from exc

    def _reconcile_in_background(self) -> None:
        """After a failed publish, keep reconciling until Redis answers, so data planes converge."""
        if self._reconciler is None or self._reconciler.done():
            self._reconciler = asyncio.create_task(self._reconcile_until_done(), name="ffaas-reconcile")

    async def _reconcile_until_done(self) -> None:
        for attempt in itertools.count():
            await asyncio.sleep(RECONCILE_RETRY_S[min(attempt, len(RECONCILE_RETRY_S) - 1)])
            try:
                await self.reconcile()
                return
            except (RedisError, OSError) as exc:
                log.warning("reconcile failed (attempt %d): %s", attempt + 1, exc)

    async def close(self) -> None:
        if self._reconciler is not None:
            self._reconciler.cancel()

    async def reconcile(self) -> None:
        """Make Redis match SQLite: modules and routes of active deploys, processors, nothing stale."""
        routes = await endpoint_store.active_routes(self._db)
        async with self._route_lock:
            for route in routes:
                await self.ensure_module(route.module_hash)
                await self._redis.hset(self._keys.routes, route.endpoint_id, _packed(route))
            active = {route.endpoint_id for route in routes}
            stored = [_text(endpoint_id) for endpoint_id in await self._redis.hkeys(self._keys.routes)]
            stale = [endpoint_id for endpoint_id in stored if endpoint_id not in active]
            if stale:
                await self._redis.hdel(self._keys.routes, *stale)
        await self.processors.reconcile()
        await self.collect_garbage(sweep=True)
        await self.processors.collect_garbage(sweep=True)
        event = RouteEvent(event_id=uuid.uuid4().hex, endpoint_id=EVERY_ENDPOINT)
        await self._redis.publish(self._keys.events, event.pack())
        log.info(
            "reconciled Redis: %d route(s) published, %d stale route(s) removed", len(routes), len(stale)
        )

    async def _write_route(self, endpoint_id: str) -> endpoint_store.ActiveRoute | None:
        async with self._route_lock:
            route = await endpoint_store.active_route(self._db, endpoint_id)
            if route is None:
                await self._redis.hdel(self._keys.routes, endpoint_id)
                return None
            await self.ensure_module(route.module_hash)
            await self._redis.hset(self._keys.routes, endpoint_id, _packed(route))
            return route

    async def ensure_module(self, module_hash: str) -> None:
        """Make the module's bytes available in Redis, refilling them from SQLite if missing.

        Raises Redis errors as they come (callers outside publishing map them to 503)."""
        key = self._keys.module(module_hash)
        if await self._redis.exists(key):
            return
        module = await load_module(self._db, module_hash)
        if module is None:
            raise RuntimeError(f"module {module_hash} is referenced by a deploy but not stored")
        await self._redis.set(key, module, nx=True)

    async def _await_acks(self, event: RouteEvent, receivers: int) -> None:
        key = self._keys.acks(event.event_id)
        deadline = time.monotonic() + self._ack_timeout_s
        acked = 0
        try:
            while acked < receivers:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning(
                        "event %s for %s: %d of %d data plane(s) acknowledged within %d ms "
                        "(FFAAS_DEPLOY_ACK_TIMEOUT_MS)",
                        event.event_id,
                        _target(event),
                        acked,
                        receivers,
                        self._ack_timeout_s * 1000,
                    )
                    return
                # Short BLPOP slices (a zero timeout would block forever): a server-side wait
                # near the client's socket timeout would turn a slow data plane into a Redis error.
                if await self._redis.blpop([key], timeout=min(max(remaining, 0.01), self._ack_slice_s)):
                    acked += 1
        finally:
            await self._redis.delete(key)


def _packed(route: endpoint_store.ActiveRoute) -> bytes:
    return EndpointRoute(route.endpoint_id, route.deploy_id, route.module_hash, route.env).pack()


def _target(event: RouteEvent) -> str:
    return f"processor {event.processor_id}" if event.processor_id else f"endpoint {event.endpoint_id}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
