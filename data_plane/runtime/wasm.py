"""wasmtime narrowed to what FFAAS runs: WASI preview1 commands, one fresh instance per run.

Invariants:
- One `Engine` and one `Linker` (WASI defined once) per process; each run gets its
  own `Store`, WASI context and instance, so nothing a guest does outlives its run.
- No run outlives its time limit: a ticker thread advances the engine's epoch
  every `TICK_S`, and each store traps once `timeout_ms` worth of ticks passed.
- Linear memory is capped per store; stdout and stderr are capped by
  `OutputCaptures` (see there).
- `run_command` never raises for anything the guest does: every guest failure is
  an `Outcome` in the returned `CommandResult`.  It is safe to call from many
  threads at once; wasmtime releases the GIL while guest code runs.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import math
import platform
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import wasmtime
from wasmtime import _ffi as ffi

from data_plane.runtime.output_capture import OutputCaptures

TICK_S = 0.005
WASM_PAGE = 65536


@dataclass(frozen=True)
class RunLimits:
    timeout_ms: int
    max_memory_bytes: int
    max_stdout_bytes: int
    max_stderr_bytes: int


class Outcome(StrEnum):
    COMPLETED = "completed"
    EXITED_NONZERO = "exited_nonzero"
    TRAPPED = "trapped"
    TIMED_OUT = "timed_out"
    OUT_OF_MEMORY = "out_of_memory"
    OUTPUT_LIMIT = "output_limit"


@dataclass(frozen=True)
class CommandResult:
    outcome: Outcome
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    stderr_truncated: bool
    detail: str
    """What went wrong, for the conversation and the server log (may hold trap frames)."""
    elapsed_ms: float
    memory_bytes: int


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
        self.join()


class WasmRuntime:
    """The process's engine.  At most `max_concurrent_runs` runs may be in flight at once."""

    def __init__(self, *, max_concurrent_runs: int, max_memory_bytes: int) -> None:
        self.engine = wasmtime.Engine(engine_config(max_concurrent_runs, max_memory_bytes))
        self.fingerprint = engine_fingerprint(max_memory_bytes)
        self.linker = self.new_linker()
        self.captures = OutputCaptures()
        self._ticker = _EpochTicker(self)
        self._ticker.start()

    def new_linker(self) -> wasmtime.Linker:
        """A linker with WASI defined, for guests that get more host functions than WASI's."""
        linker = wasmtime.Linker(self.engine)
        linker.define_wasi()
        return linker

    def compile(self, wasm: bytes) -> wasmtime.Module:
        return wasmtime.Module(self.engine, wasm)

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
        """Run `module`'s `_start` once with the given stdin, argv and environment; `linker`
        (from `new_linker`) when the guest imports more than WASI."""
        capture = self.captures.open(limits.max_stdout_bytes, limits.max_stderr_bytes)
        wasi = wasmtime.WasiConfig()
        _set_argv_and_env(wasi, argv, env)
        _set_stdin_bytes(wasi, stdin)
        wasi.stdout_file = capture.stdout.path
        wasi.stderr_file = capture.stderr.path
        store = wasmtime.Store(self.engine)
        store.set_limits(memory_size=limits.max_memory_bytes)
        store.set_epoch_deadline(math.ceil(limits.timeout_ms / 1000 / TICK_S) + 1)
        store.set_wasi(wasi)
        outcome, detail = Outcome.COMPLETED, ""
        exit_code: int | None = 0
        instance: wasmtime.Instance | None = None
        started = time.perf_counter()
        with capture:
            try:
                instance = (linker or self.linker).instantiate(store, module)
                start = instance.exports(store)["_start"]
                assert isinstance(start, wasmtime.Func)
                start(store)
            except wasmtime.ExitTrap as exc:
                exit_code = exc.code
                if exit_code != 0:
                    outcome, detail = Outcome.EXITED_NONZERO, f"exited with status {exit_code}"
            except wasmtime.Trap as exc:
                exit_code = None
                if exc.trap_code == wasmtime.TrapCode.INTERRUPT:
                    outcome, detail = Outcome.TIMED_OUT, str(exc)
                else:
                    outcome, detail = Outcome.TRAPPED, str(exc)
            except wasmtime.WasmtimeError as exc:
                # Instantiation refused, e.g. initial memory above the store's limit.
                exit_code = None
                memory_refused = "memory" in str(exc) and "limit" in str(exc)
                outcome = Outcome.OUT_OF_MEMORY if memory_refused else Outcome.TRAPPED
                detail = str(exc)
        elapsed_ms = (time.perf_counter() - started) * 1000
        stdout = capture.stdout.collect()
        stderr = capture.stderr.collect()
        memory_bytes = _memory_size(store, instance)
        if outcome in (Outcome.TRAPPED, Outcome.EXITED_NONZERO) and _near_limit(memory_bytes, limits):
            outcome = Outcome.OUT_OF_MEMORY
        if stdout.overflowed and outcome is not Outcome.OUT_OF_MEMORY:
            outcome = Outcome.OUTPUT_LIMIT
        store.close()
        capture.close()
        return CommandResult(
            outcome=outcome,
            exit_code=exit_code,
            stdout=stdout.data,
            stderr=stderr.data,
            stderr_truncated=stderr.overflowed,
            detail=detail,
            elapsed_ms=elapsed_ms,
            memory_bytes=memory_bytes,
        )

    def close(self) -> None:
        self._ticker.stop()


def _c_strings(strings: Sequence[str]) -> ctypes._Pointer[ctypes._Pointer[ctypes.c_char]]:
    array = (ctypes.c_char_p * len(strings))(*(string.encode() for string in strings))
    return ctypes.cast(array, ctypes.POINTER(ctypes.POINTER(ctypes.c_char)))


def _set_argv_and_env(wasi: wasmtime.WasiConfig, argv: Sequence[str], env: Sequence[tuple[str, str]]) -> None:
    """Like `WasiConfig.argv`/`.env`, without their per-string ctypes objects (~20 µs a run)."""
    ffi.wasi_config_set_argv(wasi.ptr(), len(argv), _c_strings(argv))
    names = _c_strings([name for name, _ in env])
    values = _c_strings([value for _, value in env])
    if not ffi.wasi_config_set_env(wasi.ptr(), len(env), names, values):
        raise wasmtime.WasmtimeError("failed to configure the environment")


def _set_stdin_bytes(wasi: wasmtime.WasiConfig, data: bytes) -> None:
    """In-memory stdin: only the C API has it (`wasi_config_set_stdin_bytes` takes the vector)."""
    vec = ffi.wasm_byte_vec_t()
    buffer = ctypes.create_string_buffer(data, len(data))
    ffi.wasm_byte_vec_new(ctypes.byref(vec), len(data), ctypes.cast(buffer, ctypes.POINTER(ctypes.c_uint8)))
    ffi.wasi_config_set_stdin_bytes(wasi.ptr(), ctypes.byref(vec))


def _memory_size(store: wasmtime.Store, instance: wasmtime.Instance | None) -> int:
    if instance is None:
        return 0
    memory = instance.exports(store).get("memory")
    return memory.data_len(store) if isinstance(memory, wasmtime.Memory) else 0


def _near_limit(memory_bytes: int, limits: RunLimits) -> bool:
    """A failed run holding at least half its memory cap most likely had `memory.grow` refused.

    wasmtime reports a refused grow to the guest only (as -1), so this is inferred;
    half, because allocators commonly grow by doubling or by large steps.
    """
    return memory_bytes >= limits.max_memory_bytes // 2
