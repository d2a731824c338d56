"""Which guest runs may execute on the event-loop thread instead of the worker pool.

A hop to a worker thread and back costs about as much as a whole hello-world run (~90 µs here),
so short runs are best made inline.  But while a guest runs inline, the data plane does nothing
else: it accepts no connection and answers no other run.  So inline time is bounded three ways:

- per run: an inline run is interrupted at `budget_ms` (FFAAS_INLINE_BUDGET_MS); its module (or
  processor) then runs on the pool for the life of the process, and the interrupted run is made
  again there (the executors guarantee that an inline attempt has no effect until it stands);
- per event-loop turn: inline runs started in one turn take at most `budget_ms` together; once
  a turn spent it, the turn's further runs go to the pool (the next turn starts afresh), so a
  burst of requests never holds the loop for more than about two budgets;
- per module: a module whose inline runs take on average (a moving average over its last runs,
  after a first run that only warms up and `MIN_SAMPLES` more) more than `SLOW_AVERAGE_MS` moves
  to the pool for good.  This is what
  catches a module that always finishes just under the budget: made inline, each of its runs
  would hold the whole plane for nearly the budget.

One unlucky run does not move a fast module: on a loaded machine (or a VM whose host is busy) the
event-loop thread may lose its core in the middle of a run, and the run then counts a multiple of
its real cost (measured here: 29 ms of "CPU" for a 0.1 ms hello-world run) or is cut off by the
budget.  So each run counts at most `SAMPLE_CAP_MS` in the average (a module that is really slow
still moves after its `MIN_SAMPLES` runs: every one of its runs counts the cap, over the limit), and
a run interrupted by the budget moves its module at once only if it used at least half the budget
of CPU; one interrupted with less (it lost its core, or slept) moves it after
`LOW_CPU_INTERRUPTIONS` such runs.  A module on the pool costs a thread hop every run (~90 µs here,
about a hello-world run's whole cost), for the life of the process.

Inline time is the event-loop thread's CPU time (the per-run interruption is wall-clock, by the
engine's epoch).  `budget_ms` 0 makes every run on the pool.  Everything here lives on the
event-loop thread.
Runs are keyed by what they run (a module hash, a processor's code hash, with a prefix per kind).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

SLOW_AVERAGE_MS = 1.0
"""At ~1 ms a run, the thread hop adds under a tenth, and the loop stays free for everyone else."""
MIN_SAMPLES = 4
"""Inline runs of a module measured before its average can move it, after its first run, which is
not measured: it pays for faulting in the module's code and memory (~1-3 ms here)."""
AVERAGE_WEIGHT = 0.25
"""Weight of the latest run in the moving average."""
SAMPLE_CAP_MS = 2 * SLOW_AVERAGE_MS
"""The most one run counts in the moving average: it takes three such runs in a row to move a module
running at a tenth of `SLOW_AVERAGE_MS`, and one slow module's runs all count this, over the limit."""
LOW_CPU_INTERRUPTIONS = 3
"""Interruptions by the budget of runs that used under half of it in CPU time before their module
moves (one that used more moves it at once)."""


class InlineRuns:
    def __init__(self, budget_ms: int, *, clock: Callable[[], float] = time.thread_time) -> None:
        self.budget_ms = budget_ms
        self.clock = clock
        """Seconds, for measuring inline runs: the event-loop thread's CPU time, so that a run is
        charged with what it used, not with the time other processes held the core (~0.7 µs a
        reading here); tests pass a fake one."""
        self._budget_s = budget_ms / 1000
        self._averages: dict[str, tuple[int, float]] = {}
        """Per key: inline runs made (the first is not measured), and their moving average in seconds."""
        self._pool_only: set[str] = set()
        self._low_cpu_interruptions: dict[str, int] = {}
        self._sample_cap_s = SAMPLE_CAP_MS / 1000
        self._turn_spent_s = 0.0
        self._turn_closing = False
        self.inline_runs = 0
        self.pool_runs = 0

    @property
    def pool_only(self) -> int:
        """How many modules and processors run only on the pool (for `/status`)."""
        return len(self._pool_only)

    def admit(self, key: str) -> bool:
        """Whether a run of `key` may be made inline now; if not, count it as a pool run."""
        inline = key not in self._pool_only and self._turn_spent_s < self._budget_s
        if not inline:
            self.pool_runs += 1
        return inline

    def ran_inline(self, key: str, elapsed_s: float, *, interrupted: bool) -> None:
        """Account for an inline run of `key` that took `elapsed_s`; `interrupted` when the budget
        cut it off (it is then made again on the pool: count that with `moved`)."""
        self.inline_runs += 1
        self._turn_spent_s += elapsed_s
        if not self._turn_closing:
            self._turn_closing = True
            asyncio.get_running_loop().call_soon(self._next_turn)
        if interrupted:
            strikes = self._low_cpu_interruptions.get(key, 0) + 1
            if elapsed_s * 2 >= self._budget_s or strikes >= LOW_CPU_INTERRUPTIONS:
                self._pool_only.add(key)
                self._low_cpu_interruptions.pop(key, None)
                self._averages.pop(key, None)
            else:
                self._low_cpu_interruptions[key] = strikes
            return
        elapsed_s = min(elapsed_s, self._sample_cap_s)
        runs, average = self._averages.get(key, (0, 0.0))
        if runs == 1:
            average = elapsed_s  # the first measured run
        elif runs > 1:
            average += (elapsed_s - average) * AVERAGE_WEIGHT
        runs += 1
        if runs > MIN_SAMPLES and average * 1000 > SLOW_AVERAGE_MS:
            self._pool_only.add(key)
            self._averages.pop(key, None)
        else:
            self._averages[key] = (runs, average)

    def moved(self) -> None:
        """An interrupted inline run is being made again on the pool."""
        self.pool_runs += 1

    def _next_turn(self) -> None:
        # Scheduled from within a turn, so it runs at the start of the next one.
        self._turn_spent_s = 0.0
        self._turn_closing = False
