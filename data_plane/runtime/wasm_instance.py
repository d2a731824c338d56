"""One run's instance of a module: its store, WASI context and output captures, called as often as
the run needs, and released on every path.

A WAGI run calls `_start` once.  A processor on the wasm engine calls an export, gets back "waiting"
while its outbound requests are in flight, and is called again when answers came: between calls the
instance holds no thread, only its store.

Invariants:
- Everything an instance holds (its `Store` with a slot of the engine's pooling allocator, two
  memfds) is released by `close`, which every path reaches: the constructor releases what it
  opened when it fails part-way, and `with` closes on any exception, expected or not.
- `call` never raises for anything the guest does: an exit, a trap, the time limit or a refused
  instantiation end the run, and `outcome`/`detail` say how.  What a host function raises that is
  not a guest's doing propagates (after `close`, through `with`).
- Each call gets its own time limit (what is left of the run's), enforced by epoch interruption.
- Used by one thread at a time; it may move between threads between calls.
"""

from __future__ import annotations

import ctypes
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

from data_plane.runtime.output_capture import OutputCaptures

TICK_S = 0.005
"""How often the epoch ticker (`wasm.WasmRuntime`) advances the engine's epoch."""


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


class WasmInstance:
    """A fresh instance of `module` with the given argv, environment and stdin, under `limits`."""

    def __init__(
        self,
        engine: wasmtime.Engine,
        captures: OutputCaptures,
        linker: wasmtime.Linker,
        module: wasmtime.Module,
        *,
        argv: Sequence[str],
        env: Sequence[tuple[str, str]],
        stdin: bytes,
        limits: RunLimits,
    ) -> None:
        self.limits = limits
        self.outcome = Outcome.COMPLETED
        self.detail = ""
        self.exit_code: int | None = 0
        self.ended = False
        """Set once the guest exited, trapped or ran out of time: it cannot be called again."""
        self._elapsed_s = 0.0
        self._instance: wasmtime.Instance | None = None
        self._store: wasmtime.Store | None = None
        self._capture = captures.open(limits.max_stdout_bytes, limits.max_stderr_bytes)
        self._capture_open = True
        try:
            wasi = wasmtime.WasiConfig()
            _set_argv_and_env(wasi, argv, env)
            _set_stdin_bytes(wasi, stdin)
            wasi.stdout_file = self._capture.stdout.path
            wasi.stderr_file = self._capture.stderr.path
            self._store = wasmtime.Store(engine)
            self._store.set_limits(memory_size=limits.max_memory_bytes)
            self._store.set_wasi(wasi)
            self._store.set_epoch_deadline(_ticks(limits.timeout_ms))
            started = time.perf_counter()
            try:
                with self._capture:
                    self._instance = linker.instantiate(self._store, module)
            except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
                self._guest_failed(exc)  # e.g. initial memory above the limit, a start function trapped
            finally:
                self._elapsed_s += time.perf_counter() - started
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> WasmInstance:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def call(self, name: str, *args: int, timeout_ms: int | None = None) -> Any:
        """Call the export `name` within `timeout_ms` (None: what is left of the limit given at
        construction, which counts from then); its result, or None once the run ended."""
        if self.ended or self._instance is None or self._store is None:
            return None
        store = self._store
        if timeout_ms is not None:
            store.set_epoch_deadline(_ticks(timeout_ms))
        started = time.perf_counter()
        try:
            with self._capture:
                function = self._instance.exports(store)[name]
                assert isinstance(function, wasmtime.Func)
                return function(store, *args)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            self._guest_failed(exc)
        finally:
            self._elapsed_s += time.perf_counter() - started
        return None

    def result(self) -> CommandResult:
        """How the run went so far: its outcome, its output and the memory it holds."""
        stdout = self._capture.stdout.collect()
        stderr = self._capture.stderr.collect()
        memory_bytes = self._memory_size()
        outcome = self.outcome
        if outcome in (Outcome.TRAPPED, Outcome.EXITED_NONZERO) and _near_limit(memory_bytes, self.limits):
            outcome = Outcome.OUT_OF_MEMORY
        if stdout.overflowed and outcome is not Outcome.OUT_OF_MEMORY:
            outcome = Outcome.OUTPUT_LIMIT
        return CommandResult(
            outcome=outcome,
            exit_code=self.exit_code,
            stdout=stdout.data,
            stderr=stderr.data,
            stderr_truncated=stderr.overflowed,
            detail=self.detail,
            elapsed_ms=self._elapsed_s * 1000,
            memory_bytes=memory_bytes,
        )

    def close(self) -> None:
        """Release the store and the captures; safe to call more than once."""
        store, self._store, self._instance = self._store, None, None
        capture, self._capture_open = self._capture_open, False
        if store is not None:
            store.close()
        if capture:
            self._capture.close()

    def _guest_failed(self, exc: wasmtime.Trap | wasmtime.WasmtimeError) -> None:
        """End the run for what the guest did: exited, trapped, ran out of time or memory."""
        self.ended = True
        self.exit_code = None
        if isinstance(exc, wasmtime.ExitTrap):
            self.exit_code = exc.code
            if exc.code != 0:
                self.outcome, self.detail = Outcome.EXITED_NONZERO, f"exited with status {exc.code}"
        elif isinstance(exc, wasmtime.Trap):
            timed_out = exc.trap_code == wasmtime.TrapCode.INTERRUPT
            self.outcome, self.detail = (Outcome.TIMED_OUT if timed_out else Outcome.TRAPPED), str(exc)
        else:
            memory_refused = "memory" in str(exc) and "limit" in str(exc)
            self.outcome = Outcome.OUT_OF_MEMORY if memory_refused else Outcome.TRAPPED
            self.detail = str(exc)

    def _memory_size(self) -> int:
        if self._instance is None or self._store is None:
            return 0
        memory = self._instance.exports(self._store).get("memory")
        return memory.data_len(self._store) if isinstance(memory, wasmtime.Memory) else 0


def _ticks(timeout_ms: int) -> int:
    return math.ceil(max(timeout_ms, 0) / 1000 / TICK_S) + 1


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


def _near_limit(memory_bytes: int, limits: RunLimits) -> bool:
    """A failed run holding at least half its memory cap most likely had `memory.grow` refused.

    wasmtime reports a refused grow to the guest only (as -1), so this is inferred;
    half, because allocators commonly grow by doubling or by large steps.
    """
    return memory_bytes >= limits.max_memory_bytes // 2
