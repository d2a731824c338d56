"""A `WasmRuntime` whose clock the test moves: the one fake of the data-plane tests (time).

The runtime's time limits are epoch deadlines: its ticker thread advances the engine's
epoch every `TICK_S`, and a store traps once its deadline's worth of ticks passed. Here:

- `SteppedRuntime(ticking=False)` stops the ticker, so a run is interrupted only when the
  test calls `advance_ms` (runtime tests, with a guest that signals when it is running);
- `SteppedRuntime(ticking=True)` keeps real time and lets the test end runs at once with
  `expire_runs` (component tests, where runs get a long limit the test cuts short).

It also counts the runs in progress by their time limit, so a test can wait until
its long runs are really running instead of sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from typing import Any

import wasmtime

from data_plane.runtime.wasm import TICK_S, CommandResult, WasmRuntime

WAIT_S = 10.0


class SteppedRuntime(WasmRuntime):
    def __init__(self, *, ticking: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not ticking:
            self.start(ticking=False)  # the test moves the clock; `ticking` runtimes start as any
        self._runs = Counter[int]()  # time limit (ms) -> runs in progress with it
        self._changed = threading.Condition()

    def run_command(self, module: wasmtime.Module, **kwargs: Any) -> CommandResult:
        timeout_ms = kwargs["limits"].timeout_ms
        with self._changed:
            self._runs[timeout_ms] += 1
            self._changed.notify_all()
        try:
            return super().run_command(module, **kwargs)
        finally:
            with self._changed:
                self._runs[timeout_ms] -= 1
                self._changed.notify_all()

    def runs_in_progress(self, timeout_ms: int) -> int:
        with self._changed:
            return self._runs[timeout_ms]

    def wait_for_runs(self, count: int, timeout_ms: int) -> None:
        """Block until `count` runs with the time limit `timeout_ms` are in progress."""
        with self._changed:
            running = self._changed.wait_for(lambda: self._runs[timeout_ms] >= count, WAIT_S)
        assert running, f"{self._runs[timeout_ms]} of {count} runs limited to {timeout_ms} ms started"

    def advance_ms(self, milliseconds: float) -> None:
        """Move the engine's clock on by `milliseconds` (whole ticks, rounded up)."""
        for _ in range(math.ceil(milliseconds / 1000 / TICK_S)):
            self.engine.increment_epoch()
        self.captures.enforce_caps()

    def expire_runs(self, timeout_ms: int) -> None:
        """Interrupt every run limited to `timeout_ms` now, as if its time were up."""
        deadline = time.monotonic() + WAIT_S
        while self.runs_in_progress(timeout_ms):
            assert time.monotonic() < deadline, f"runs limited to {timeout_ms} ms did not end"
            self.advance_ms(timeout_ms + 10 * TICK_S * 1000)
            with self._changed:
                self._changed.wait_for(lambda: not self._runs[timeout_ms], 0.01)
