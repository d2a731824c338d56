"""wasmtime narrowed to what FFAAS runs: WASI preview1 commands, one fresh instance per run.

Invariants:
- One `Engine` and one `Linker` (WASI defined once) per process; each run gets its
  own `Store`, WASI context and instance (`wasm_instance.WasmInstance`), so nothing
  a guest does outlives its run, and everything a run holds is released on every path.
- No run outlives its time limit: a ticker thread, running from `start` to `close`,
  advances the engine's epoch every `TICK_S`, and each store traps once `timeout_ms`
  worth of ticks passed.  No instance is made while the ticker is not running.
- Linear memory is capped per store; stdout and stderr are capped by
  `OutputCaptures` (see there).
- `run_command` never raises for anything the guest does: every guest failure is
  an `Outcome` in the returned `CommandResult`.  It is safe to call from many
  threads at once; wasmtime releases the GIL while guest code runs.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import threading
from collections.abc import Sequence

import wasmtime
from wasmtime import _ffi as ffi

from data_plane.runtime.output_capture import OutputCaptures
from data_plane.runtime.wasm_instance import TICK_S, CommandResult, Outcome, RunLimits, WasmInstance

__all__ = ["TICK_S", "CommandResult", "Outcome", "RunLimits", "WasmInstance", "WasmRuntime"]

WASM_PAGE = 65536
MAX_WASM_STACK = 1 << 20
KEEP_RESIDENT_BYTES = 1 << 20
MAX_TABLE_ELEMENTS = 1 << 17


def engine_config(instance_slots: int, max_memory_bytes: int) -> wasmtime.Config:
    """Cranelift for speed, epoch interruption, and the pooling allocator.

    The pooling allocator reuses `instance_slots` preallocated instance and
    memory slots instead of an mmap/munmap per run (measured ~140 -> ~106 µs
    for a hello-world run), keeping the first MiB of each memory resident.
    """
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.cranelift_opt_level = "speed"
    # Deep recursion in a guest must trap, not abort the process: wasmtime aborts
    # above ~2 MB here, so stay well below.
    config.max_wasm_stack = MAX_WASM_STACK
    pooling = ffi.wasmtime_pooling_allocation_config_new()
    try:
        ffi.wasmtime_pooling_allocation_config_total_core_instances_set(pooling, instance_slots)
        ffi.wasmtime_pooling_allocation_config_total_memories_set(pooling, instance_slots)
        ffi.wasmtime_pooling_allocation_config_total_tables_set(pooling, instance_slots)
        ffi.wasmtime_pooling_allocation_config_total_stacks_set(pooling, instance_slots)
        ffi.wasmtime_pooling_allocation_config_max_memory_size_set(pooling, max_memory_bytes)
        ffi.wasmtime_pooling_allocation_config_table_elements_set(pooling, MAX_TABLE_ELEMENTS)
        ffi.wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(pooling, KEEP_RESIDENT_BYTES)
        ffi.wasmtime_pooling_allocation_config_table_keep_resident_set(pooling, KEEP_RESIDENT_BYTES)
        ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pooling)
    finally:
        ffi.wasmtime_pooling_allocation_config_delete(pooling)
    return config


def engine_fingerprint(max_memory_bytes: int) -> str:
    """Names the artifacts this engine can load: same wasmtime, machine and config."""
    identity = "|".join(
        [
            importlib.metadata.version("wasmtime"),
            platform.machine(),
            f"epoch,speed,stack={MAX_WASM_STACK},pooling,memory={max_memory_bytes}",
        ]
    )
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


class _EpochTicker(threading.Thread):
    def __init__(self, runtime: WasmRuntime) -> None:
        super().__init__(name="ffaas-epoch-ticker", daemon=True)
        self._runtime = runtime
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(TICK_S):
            self._runtime.engine.increment_epoch()
            self._runtime.captures.enforce_caps()

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive():
            self.join()


class WasmRuntime:
    """The process's engine.  At most `max_concurrent_runs` instances may exist at once.

    Its ticker thread runs from `start` (or entering `with`) to `close`; building one starts
    no thread, so a data plane whose start-up fails leaves nothing running.
    """

    def __init__(self, *, max_concurrent_runs: int, max_memory_bytes: int) -> None:
        self.engine = wasmtime.Engine(engine_config(max_concurrent_runs, max_memory_bytes))
        self.fingerprint = engine_fingerprint(max_memory_bytes)
        self.linker = self.new_linker()
        self.captures = OutputCaptures()
        self._ticker = _EpochTicker(self)
        self._started = False
        self._lock = threading.Lock()

    def start(self, *, ticking: bool = True) -> None:
        """Start the epoch ticker (once); runs need it for their time limits.  `ticking=False`
        is for a caller that advances the epoch itself (a test's clock)."""
        with self._lock:
            self._started = True
            if ticking and not self._ticker.is_alive():
                self._ticker = _EpochTicker(self)
                self._ticker.start()

    def close(self) -> None:
        """Stop the ticker; safe to call more than once, and without `start`."""
        with self._lock:
            self._started = False
            self._ticker.stop()

    def __enter__(self) -> WasmRuntime:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def new_linker(self) -> wasmtime.Linker:
        """A linker with WASI defined, for guests that get more host functions than WASI's."""
        linker = wasmtime.Linker(self.engine)
        linker.define_wasi()
        return linker

    def compile(self, wasm: bytes) -> wasmtime.Module:
        return wasmtime.Module(self.engine, wasm)

    def instance(
        self,
        module: wasmtime.Module,
        *,
        argv: Sequence[str],
        env: Sequence[tuple[str, str]],
        stdin: bytes,
        limits: RunLimits,
        linker: wasmtime.Linker | None = None,
    ) -> WasmInstance:
        """A fresh instance of `module` for one run (close it, or use it in `with`); `linker`
        (from `new_linker`) when the guest imports more than WASI."""
        if not self._started:
            raise RuntimeError("WasmRuntime.start() was not called: runs would have no time limit")
        return WasmInstance(
            self.engine,
            self.captures,
            linker or self.linker,
            module,
            argv=argv,
            env=env,
            stdin=stdin,
            limits=limits,
        )

    def run_command(
        self,
        module: wasmtime.Module,
        *,
        argv: Sequence[str],
        env: Sequence[tuple[str, str]],
        stdin: bytes,
        limits: RunLimits,
        linker: wasmtime.Linker | None = None,
    ) -> CommandResult:
        """Run `module`'s `_start` once with the given stdin, argv and environment."""
        with self.instance(module, argv=argv, env=env, stdin=stdin, limits=limits, linker=linker) as run:
            run.call("_start")
            return run.result()
