"""Admission of runs to the worker pool: at most `limit` *fresh* runs at once.

On a machine with few cores, more short runs in flight than cores only contend for the cores and
the GIL (measured with 2 cores: 32 parallel JS-in-wasm runs served ~580 req/s, 4 served ~740).  But
a cap on all runs would let a few looping guests hold every slot.  So only fresh runs count: a run
stops counting `age_s` after it started, and a waiting run gets its slot then.

Invariants (all state lives on the event loop):
- At most `limit` admitted runs are younger than `age_s` (or than their end, if sooner).
- Slots are handed over in arrival order; no run waits longer than `age_s` behind any one run.
- A waiter cancelled before or after being handed a slot never loses that slot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator


class FreshRunLimit:
    def __init__(self, limit: int, age_s: float) -> None:
        self._limit = limit
        self._age_s = age_s
        self._fresh = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def fresh(self) -> int:
        return self._fresh

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot while the run is fresh: enter before submitting the run, leave when it ended."""
        loop = asyncio.get_running_loop()
        if self._fresh < self._limit and not self._waiters:
            self._fresh += 1
        else:
            handed: asyncio.Future[None] = loop.create_future()
            self._waiters.append(handed)
            try:
                await handed
            except asyncio.CancelledError:
                if handed.done() and not handed.cancelled():
                    self._release()  # the slot was handed over just as we were cancelled
                else:
                    self._waiters.remove(handed)
                raise
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._release()

        aging = loop.call_later(self._age_s, release)
        try:
            yield
        finally:
            aging.cancel()
            release()

    def _release(self) -> None:
        """Hand the freed slot to the first waiter still waiting, else free it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._fresh -= 1
