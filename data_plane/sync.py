"""Keeps the registry equal to the routes the control plane published in Redis.

Protocol (see shared.events): the `Keys.routes` and `Keys.processors` hashes are
the truth; a `RouteEvent` on `Keys.events` only says which endpoint or
processor to re-read (`"*"`: all of them).

Invariants:
- Before the data plane serves, `start` has installed every route in Redis,
  compiling each module or loading it from the disk cache, and is subscribed to
  route events (so the control plane counts it, and waits for it, from then on).
- After every (re)connection of the event subscription the whole hash is read
  again, so events missed while disconnected, or published before this plane
  started, are never lost. That includes the reconnections redis-py makes by
  itself inside a read (Redis killed and restarted within its retries): a
  connect callback on the subscription's connection catches those, and logs them.
- Events are applied one at a time in arrival order, and each is acknowledged
  (`Keys.acks`) only once the new state is being served.  A route whose module
  cannot be prepared, or whose record cannot be read, keeps serving its previous
  deploy.
- The follower never dies: an event it cannot handle is logged and followed by a
  full re-read; a lost connection by a new subscription (and a full re-read) after a
  bounded backoff. `health` says what it is doing ("ok", "resyncing", or
  "failing: <why>") and keeps the last error, for `/status`.
- After every change, what no route uses any more is let go (`_let_go_of_unused`):
  compiled modules (see `ModuleCache.retain` for their disk artifacts) and sources.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
import wasmtime
from redis.exceptions import RedisError

from data_plane.registry import PreparedEndpoint, PreparedProcessor, Registry
from data_plane.runtime.module_cache import ModuleCache
from shared.content_hash import content_hash
from shared.events import EndpointRoute, ProcessorRoute, RouteEvent
from shared.keys import Keys
from shared.timestamps import utc_now

log = logging.getLogger("ffaas.sync")

R = TypeVar("R")
P = TypeVar("P")
ACK_TTL_S = 60
RETRY_DELAYS_S = (0.1, 0.25, 0.5, 1.0, 2.0)
POLL_S = 0.1
STOP_GRACE_S = 2.0


@dataclass
class SyncHealth:
    """The route follower as `/status` shows it."""

    state: str = "starting"
    """"ok" (following events), "resyncing" (a full re-read is running) or "failing: <why>"."""
    last_error: str | None = None
    """When and what, for the last thing that went wrong (an unreadable record, a lost connection)."""
    errors: int = 0

    def failed(self, what: str) -> None:
        self.errors += 1
        self.last_error = f"{utc_now()} {what}"


class _NeedsBytes(Exception):
    """The module is neither in memory nor on disk: its bytes must come from Redis."""


def _needs_bytes() -> bytes:
    raise _NeedsBytes


class RouteSync:
    def __init__(
        self, redis: aioredis.Redis, keys: Keys, registry: Registry, cache: ModuleCache, plane_id: str
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._registry = registry
        self._cache = cache
        self._plane_id = plane_id
        self._compiler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ffaas-compile")
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._following = asyncio.Event()
        """Set once subscribed to route events and synced after subscribing."""
        self._resync = asyncio.Event()
        """Set when a full re-read is due: at every (re)connection of the subscription, after an error."""
        self.health = SyncHealth()
        self._sources: dict[str, str] = {}
        """Processor JavaScript by code hash, of the processors installed."""

    @property
    def sources_held(self) -> int:
        """Processor sources kept in memory (for `/status`): those of the processors installed."""
        return len(self._sources)

    async def start(self) -> None:
        await self._full_sync()
        self.health.state = "ok"
        self._task = asyncio.create_task(self._follow(), name="ffaas-route-sync")
        # Serving before the subscription exists would let a deploy be acknowledged to the control
        # plane without this plane (not yet a subscriber), while it still serves the previous one.
        following = asyncio.create_task(self._following.wait())
        await asyncio.wait({self._task, following}, return_when=asyncio.FIRST_COMPLETED)
        if not following.done():
            following.cancel()
            self._task.result()  # raises what ended the follow loop

    async def stop(self) -> None:
        """Let the follow loop finish on its own: cancelling redis-py's pub/sub mid-read can hang."""
        self._stopping.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=POLL_S + STOP_GRACE_S)
        self._compiler.shutdown(wait=False, cancel_futures=True)

    async def _follow(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._keys.events)
                assert pubsub.connection is not None  # subscribe connected it
                pubsub.connection.register_connect_callback(self._reconnected)
                self._resync.set()  # events published while this plane was not subscribed are lost
                while not self._stopping.is_set():
                    if self._resync.is_set():
                        self._resync.clear()
                        self.health.state = "resyncing"
                        await self._full_sync()
                        self.health.state = "ok"
                        self._following.set()
                        attempt = 0
                    message = await pubsub.get_message(timeout=POLL_S)
                    if message is not None:
                        await self._apply_or_resync(message["data"])
            except Exception as exc:
                delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
                attempt += 1
                self.health.state = f"failing: {exc!r}"
                self.health.failed(f"route sync: {exc!r}")
                log.warning(
                    "route sync failed (%r); subscribing and re-reading every route in %.2fs", exc, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
            finally:
                if pubsub.connection is not None:
                    pubsub.connection.deregister_connect_callback(self._reconnected)
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    def _reconnected(self, connection: Any) -> None:
        """redis-py reconnected the subscription by itself (and subscribed again): re-read everything."""
        log.warning("route sync: the connection to Redis was re-established; re-reading every route")
        self._resync.set()

    async def _apply_or_resync(self, data: bytes) -> None:
        """Apply one event; if that fails for any reason but the connection, log it and re-read everything."""
        try:
            await self._apply(RouteEvent.unpack(data))
        except (RedisError, OSError):
            raise
        except Exception as exc:
            self.health.failed(f"route event {data[:200]!r}: {exc!r}")
            log.warning("route sync cannot apply event %r (%r); re-reading every route", data[:200], exc)
            self._resync.set()

    async def _apply(self, event: RouteEvent) -> None:
        if event.endpoint_id == "*":
            await self._full_sync()
        elif event.processor_id:
            packed = await self._redis.hget(self._keys.processors, event.processor_id)
            if packed is None:
                self._registry.remove_processor(event.processor_id)
            else:
                processor = await self._prepare_processor(ProcessorRoute.unpack(_raw(packed)))
                if processor is not None:
                    self._registry.install_processor(processor)
        else:
            packed = await self._redis.hget(self._keys.routes, event.endpoint_id)
            if packed is None:
                self._registry.remove(event.endpoint_id)
            else:
                prepared = await self._prepare(EndpointRoute.unpack(_raw(packed)))
                if prepared is not None:
                    self._registry.install(prepared)
        await self._let_go_of_unused()
        ack = self._keys.acks(event.event_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(ack, self._plane_id)
            pipe.expire(ack, ACK_TTL_S)
            await pipe.execute()

    async def _full_sync(self) -> None:
        """Install every route and processor in Redis; one that cannot be read or prepared keeps
        its previous version (and is noted in `health`). Only Redis errors end it early."""
        snapshot = await self._redis.hgetall(self._keys.routes)
        endpoints: dict[str, PreparedEndpoint] = {}
        for key, packed in snapshot.items():
            endpoint_id = _raw(key).decode()
            prepared = await self._prepared_or_none(
                f"endpoint {endpoint_id}", self._prepare, EndpointRoute.unpack, packed
            )
            prepared = prepared or self._registry.endpoint(endpoint_id)
            if prepared is not None:
                endpoints[endpoint_id] = prepared
        self._registry.replace_all(endpoints)
        processors: dict[str, PreparedProcessor] = {}
        for key, packed in (await self._redis.hgetall(self._keys.processors)).items():
            processor_id = _raw(key).decode()
            prepared_processor = await self._prepared_or_none(
                f"processor {processor_id}", self._prepare_processor, ProcessorRoute.unpack, packed
            )
            prepared_processor = prepared_processor or self._registry.processor(processor_id)
            if prepared_processor is not None:
                processors[processor_id] = prepared_processor
        self._registry.replace_processors(processors)
        await self._let_go_of_unused()
        log.info("route sync: %d endpoints and %d processors installed", len(endpoints), len(processors))

    async def _prepared_or_none(
        self,
        what: str,
        prepare: Callable[[R], Awaitable[P | None]],
        unpack: Callable[[bytes], R],
        packed: bytes | str,
    ) -> P | None:
        """`prepare(unpack(packed))`, or None (logged, noted in `health`) if anything but Redis fails."""
        try:
            return await prepare(unpack(_raw(packed)))
        except (RedisError, OSError):
            raise
        except Exception as exc:
            self.health.failed(f"{what}: {exc}")
            log.error("route sync: %s keeps its previous version: %s", what, exc)
            return None

    async def _let_go_of_unused(self) -> None:
        in_use = self._registry.code_hashes()
        self._sources = {
            code_hash: self._sources[code_hash] for code_hash in in_use if code_hash in self._sources
        }
        modules = self._registry.module_hashes()
        await asyncio.get_running_loop().run_in_executor(self._compiler, self._cache.retain, modules)

    async def _prepare_processor(self, route: ProcessorRoute) -> PreparedProcessor | None:
        """The processor ready to run; None (keep the previous version) when its code is not in Redis."""
        source = self._sources.get(route.code_hash)
        if source is None:
            code = await self._redis.get(self._keys.processor_code(route.code_hash))
            if code is None or content_hash(_raw(code)) != route.code_hash:
                log.error(
                    "code %s of processor %s is missing or corrupt in Redis",
                    route.code_hash,
                    route.processor_id,
                )
                return None
            source = self._sources[route.code_hash] = _raw(code).decode()
        return PreparedProcessor(
            processor_id=route.processor_id,
            name=route.name,
            language=route.language,
            runtime=route.runtime,
            code_hash=route.code_hash,
            source=source,
            version_id=route.version_id,
        )

    async def _prepare(self, route: EndpointRoute) -> PreparedEndpoint | None:
        """The endpoint ready to serve; None when its module bytes cannot be had (yet)."""
        module: wasmtime.Module | None = None
        unusable_reason = ""
        try:
            module = await self._module(route.module_hash)
        except ValueError as exc:
            log.error("cannot prepare deploy %s of endpoint %s: %s", route.deploy_id, route.endpoint_id, exc)
            return None
        except wasmtime.WasmtimeError as exc:
            unusable_reason = _compile_failure(exc)
            log.error("deploy %s of endpoint %s cannot run here: %s", route.deploy_id, route.endpoint_id, exc)
        return PreparedEndpoint(
            endpoint_id=route.endpoint_id,
            deploy_id=route.deploy_id,
            module_hash=route.module_hash,
            module=module,
            env=tuple(route.env.items()),
            unusable_reason=unusable_reason,
        )

    async def _module(self, module_hash: str) -> wasmtime.Module:
        module = self._cache.get(module_hash)
        if module is not None:
            return module
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._compiler, self._cache.load_or_compile, module_hash, _needs_bytes
            )
        except _NeedsBytes:
            pass
        stored = await self._redis.get(self._keys.module(module_hash))
        if stored is None:
            raise ValueError(f"module {module_hash} is not in Redis")
        wasm = _raw(stored)
        if content_hash(wasm) != module_hash:
            raise ValueError(f"module bytes in Redis do not match hash {module_hash}")
        return await loop.run_in_executor(
            self._compiler, self._cache.load_or_compile, module_hash, lambda: wasm
        )


def _compile_failure(exc: wasmtime.WasmtimeError) -> str:
    """wasmtime's innermost cause, which names the offending limit (e.g. initial memory size)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    cause = lines[-1].split(": ", 1)[-1] if lines else "compilation failed"
    hint = " (FFAAS_MAX_MEMORY_BYTES)" if "memory" in cause else ""
    return f"the deployed module cannot run on this data plane: {cause}{hint}"


def _raw(value: bytes | str) -> bytes:
    """Redis values as bytes (the client is not decoding; this narrows its declared type)."""
    return value if isinstance(value, bytes) else value.encode()
