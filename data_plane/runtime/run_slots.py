"""A cap on the runs of one kind in flight at once, with a bounded queue in front of it.

Invariants:
- At most `max_runs` holders at once; at most `max_queued` more wait, each no longer than its
  run's deadline.  A run that finds the queue full, or whose deadline passes while it waits, gets
  `refuse(why)` raised (the caller's 503 with Retry-After, naming the settings).
- `runs` and `queued` are exact at every await point (for `/status`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable


class RunSlots:
    def __init__(self, max_runs: int, max_queued: int, refuse: Callable[[str], Exception]) -> None:
        self.max_runs = max_runs
        self.max_queued = max_queued
        self._refuse = refuse
        self._slots = asyncio.Semaphore(max_runs)
        self.runs = 0
        """Runs holding a slot right now."""
        self.queued = 0
        """Runs waiting for a slot right now."""
        self.refused = 0
        """Runs refused so far."""

    @contextlib.asynccontextmanager
    async def slot(self, deadline: float) -> AsyncIterator[None]:
        """Hold a slot for the block; `deadline` is the run's, on the loop's clock."""
        if self.runs >= self.max_runs and self.queued >= self.max_queued:
            self.refused += 1
            raise self._refuse(f"and {self.queued} more are queued")
        self.queued += 1
        try:
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        except TimeoutError:
            self.refused += 1
            raise self._refuse("and none ended within the run's time limit") from None
        finally:
            self.queued -= 1
        self.runs += 1
        try:
            yield
        finally:
            self.runs -= 1
            self._slots.release()
