"""Embedded V8 (mini-racer), narrowed to what processors need.

Invariants:
- A context (mini-racer gives each its own V8 isolate) serves exactly one run
  and is then closed: nothing a run leaves behind is visible to another run.
- Contexts cost ~2-3 ms to build, so they are built ahead of demand on a
  background thread (`warm_contexts` kept ready) and bound to the event loop, so
  host functions that JavaScript calls run on the loop.
- JavaScript never runs on the event-loop thread: it runs on V8's own thread
  and is awaited; cancelling the awaiting task (a deadline) terminates it.
- Each context's heap has a hard limit; exceeding it raises `JSOOMException`.
- Building a context needs the event loop (mini-racer delivers its results
  there), so nothing here ever blocks the loop waiting for the builder thread:
  `close` waits for an in-flight build asynchronously and closes what it built
  (blocking there deadlocked the shutdown).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from py_mini_racer import JSPromise, MiniRacer, mini_racer

log = logging.getLogger("ffaas.v8")

HostFunction = Callable[..., Awaitable[Any]]


class V8Context:
    """One fresh context for one run.  `host` is whatever the run's host functions serve
    (set by the executor per run; host functions exposed ahead of time reach it here)."""

    def __init__(self, racer: MiniRacer) -> None:
        self._racer = racer
        self._exits = contextlib.AsyncExitStack()
        self.host: Any = None

    async def expose(self, name: str, function: HostFunction) -> None:
        """Make the async Python `function` callable from JS as `globalThis[name]` (returns a Promise).

        Arguments and results cross as primitives: pass JSON strings.
        """
        js_function = await self._exits.enter_async_context(self._racer.wrap_py_function(function))
        global_object = self._racer.eval("globalThis")
        global_object[name] = js_function  # type: ignore[index,call-overload]

    async def evaluate(self, code: str) -> Any:
        """Run `code` as a script; if its value is a promise, wait for it to settle."""
        value = await self._racer.eval_cancelable(code)
        if isinstance(value, JSPromise):
            value = await value
        return value

    async def release(self) -> None:
        await self._exits.aclose()


Prepare = Callable[[V8Context], Awaitable[None]]


async def _nothing_to_prepare(context: V8Context) -> None:
    return None


class V8Runtime:
    """Hands out fresh contexts, each already passed through `prepare` (on the event loop, ahead
    of demand: exposing host functions and evaluating a prelude cost ~1.2 ms a run otherwise)."""

    def __init__(
        self, *, warm_contexts: int, max_heap_bytes: int, prepare: Prepare = _nothing_to_prepare
    ) -> None:
        self._warm = warm_contexts
        self._max_heap_bytes = max_heap_bytes
        self._prepare = prepare
        self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ffaas-v8-build")
        self._closer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ffaas-v8-close")
        self._ready: asyncio.Queue[tuple[Any, V8Context]] | None = None
        self._filler: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._building: concurrent.futures.Future[tuple[Any, MiniRacer]] | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Queue(maxsize=self._warm)
        self._filler = asyncio.create_task(self._fill(), name="ffaas-v8-warm")

    @contextlib.asynccontextmanager
    async def fresh_context(self) -> AsyncIterator[V8Context]:
        assert self._ready is not None and self._loop is not None, "start() first"
        try:
            maker, context = self._ready.get_nowait()
        except asyncio.QueueEmpty:
            maker, context = await self._prepared(
                await self._loop.run_in_executor(self._builder, self._build)
            )
        try:
            yield context
        finally:
            await context.release()
            self._loop.run_in_executor(self._closer, _close, maker)

    async def close(self) -> None:
        if self._filler is not None:
            self._filler.cancel()
            await asyncio.gather(self._filler, return_exceptions=True)
        if self._building is not None:
            with contextlib.suppress(Exception):
                maker, _ = await asyncio.wrap_future(self._building)
                _close(maker)
        if self._ready is not None:
            while not self._ready.empty():
                maker, context = self._ready.get_nowait()
                await context.release()
                _close(maker)
        await asyncio.to_thread(self._builder.shutdown, wait=True)
        await asyncio.to_thread(self._closer.shutdown, wait=True)

    async def _fill(self) -> None:
        assert self._ready is not None
        while True:
            # A concurrent future, not run_in_executor's: cancelling this task must not lose
            # track of a context being built (close() waits for it and closes it).
            self._building = self._builder.submit(self._build)
            # Shielded: cancelling the filler must neither cancel nor lose the build.
            built = await asyncio.shield(asyncio.wrap_future(self._building))
            self._building = None
            await self._ready.put(await self._prepared(built))

    async def _prepared(self, built: tuple[Any, MiniRacer]) -> tuple[Any, V8Context]:
        maker, racer = built
        context = V8Context(racer)
        try:
            await self._prepare(context)
        except BaseException:
            await context.release()
            _close(maker)
            raise
        return maker, context

    def _build(self) -> tuple[Any, MiniRacer]:
        maker = mini_racer(event_loop=self._loop)
        racer = maker.__enter__()
        racer.set_hard_memory_limit(self._max_heap_bytes)
        return maker, racer


def _close(maker: Any) -> None:
    try:
        maker.__exit__(None, None, None)
    except Exception:  # closing must never take the process down
        log.exception("closing a V8 context failed")
