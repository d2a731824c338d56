"""What a run holds (its memfds, its store and pooling slot) is released on every path, also when a
host function fails in a way that is no guest's doing; and the runtime starts no thread of its own
before `start`."""

from __future__ import annotations

import contextlib
import os
import threading

import pytest
import wasmtime

from data_plane.runtime.wasm import RunLimits, WasmRuntime
from tests.data_plane import guests

LIMITS = RunLimits(timeout_ms=1000, max_memory_bytes=1 << 20, max_stdout_bytes=4096, max_stderr_bytes=4096)
SLOTS = 2


class HostBroke(Exception):
    pass


def calls_a_failing_host_function() -> bytes:
    return wasmtime.wat2wasm(
        """(module
          (import "test" "boom" (func $boom))
          (memory (export "memory") 1)
          (func (export "_start") (call $boom)))"""
    )


def open_capture_fds() -> int:
    """This process's open memfds of run captures (`/memfd:ffaas-stdout (deleted)`, ...)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # closed since listing
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:ffaas-")
    return count


def test_a_run_that_raises_releases_its_memfds_and_its_instance_slot() -> None:
    with WasmRuntime(max_concurrent_runs=SLOTS, max_memory_bytes=LIMITS.max_memory_bytes) as runtime:
        linker = runtime.new_linker()

        def boom() -> None:
            raise HostBroke("the host failed")

        linker.define_func("test", "boom", wasmtime.FuncType([], []), boom)
        failing = runtime.compile(calls_a_failing_host_function())
        fine = runtime.compile(guests.prints(b"still runs"))
        before = open_capture_fds()
        failures = []
        for _ in range(3 * SLOTS):
            with pytest.raises(HostBroke) as raised:
                runtime.run_command(failing, argv=["g"], env=[], stdin=b"", limits=LIMITS, linker=linker)
            failures.append(raised.value)  # keeps each traceback (and whatever it references) alive
        assert open_capture_fds() == before, "a failed run left memfds open"
        # Every instance slot of the pooling allocator is free again: a run still gets one.
        result = runtime.run_command(fine, argv=["g"], env=[], stdin=b"", limits=LIMITS)
        assert result.stdout == b"still runs"


def test_the_runtime_starts_its_ticker_only_when_started_and_refuses_runs_before() -> None:
    runtime = WasmRuntime(max_concurrent_runs=SLOTS, max_memory_bytes=LIMITS.max_memory_bytes)
    assert not ticker_threads()
    module = runtime.compile(guests.prints(b"x"))
    with pytest.raises(RuntimeError, match="start"):
        runtime.run_command(module, argv=["g"], env=[], stdin=b"", limits=LIMITS)
    runtime.start()
    assert len(ticker_threads()) == 1
    runtime.close()
    runtime.close()
    assert not ticker_threads()


def ticker_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "ffaas-epoch-ticker"]
