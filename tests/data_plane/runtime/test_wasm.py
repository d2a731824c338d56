"""The wasm runtime on inline WAT guests: output, limits and trap outcomes."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import wasmtime

from data_plane.runtime.wasm import TICK_S, CommandResult, Outcome, RunLimits, WasmRuntime
from tests.data_plane import guests
from tests.data_plane.stepped_runtime import SteppedRuntime

LIMITS = RunLimits(timeout_ms=1000, max_memory_bytes=4 << 20, max_stdout_bytes=1 << 20, max_stderr_bytes=1024)


@pytest.fixture(scope="module")
def runtime() -> Iterator[WasmRuntime]:
    with WasmRuntime(max_concurrent_runs=8, max_memory_bytes=LIMITS.max_memory_bytes) as runtime:
        yield runtime


def run(
    runtime: WasmRuntime,
    wasm: bytes,
    *,
    stdin: bytes = b"",
    limits: RunLimits = LIMITS,
    env: list[tuple[str, str]] | None = None,
) -> CommandResult:
    return runtime.run_command(
        runtime.compile(wasm), argv=["guest"], env=env or [], stdin=stdin, limits=limits
    )


def test_stdout_and_stderr_are_captured_separately(runtime: WasmRuntime) -> None:
    result = run(runtime, guests.prints(b"hello out", b"hello err\n"))
    assert result.outcome is Outcome.COMPLETED
    assert (result.stdout, result.stderr, result.exit_code) == (b"hello out", b"hello err\n", 0)


def test_stdin_reaches_the_guest(runtime: WasmRuntime) -> None:
    body = bytes(range(256)) * 100
    assert run(runtime, guests.echo_stdin(), stdin=body).stdout == body


def test_consecutive_runs_on_one_thread_do_not_see_each_others_output(runtime: WasmRuntime) -> None:
    assert run(runtime, guests.prints(b"a much longer first output")).stdout == b"a much longer first output"
    assert run(runtime, guests.prints(b"short")).stdout == b"short"


def test_environment_is_passed(runtime: WasmRuntime) -> None:
    result = run(runtime, guests.prints_env("GREETING"), env=[("GREETING", "hi there")])
    assert b"GREETING=hi there\0" in result.stdout


def test_nonzero_exit_is_reported_with_its_code(runtime: WasmRuntime) -> None:
    result = run(runtime, guests.exits(3))
    assert (result.outcome, result.exit_code) == (Outcome.EXITED_NONZERO, 3)


def test_exit_zero_completes(runtime: WasmRuntime) -> None:
    assert run(runtime, guests.exits(0)).outcome is Outcome.COMPLETED


def test_trap_is_reported_not_raised(runtime: WasmRuntime) -> None:
    result = run(runtime, guests.traps())
    assert result.outcome is Outcome.TRAPPED
    assert "unreachable" in result.detail


@pytest.fixture
def stepped() -> Iterator[SteppedRuntime]:
    """A runtime whose clock moves only when the test says so."""
    runtime = SteppedRuntime(ticking=False, max_concurrent_runs=4, max_memory_bytes=LIMITS.max_memory_bytes)
    yield runtime
    runtime.close()


def signalling_loop(
    runtime: WasmRuntime, started: threading.Event
) -> tuple[wasmtime.Module, wasmtime.Linker]:
    """A guest that calls the host's `started` (its deadline is set by then), then loops forever."""
    linker = runtime.new_linker()
    linker.define_func("test", "started", wasmtime.FuncType([], []), started.set)
    wasm = wasmtime.wat2wasm(
        """(module (import "test" "started" (func $started)) (memory (export "memory") 1)
             (func (export "_start") (call $started) (loop $forever (br $forever))))"""
    )
    return runtime.compile(wasm), linker


def run_in_thread(
    runtime: WasmRuntime, module: wasmtime.Module, linker: wasmtime.Linker, limits: RunLimits
) -> tuple[threading.Thread, list[CommandResult]]:
    results: list[CommandResult] = []

    def target() -> None:
        results.append(
            runtime.run_command(module, argv=["g"], env=[], stdin=b"", limits=limits, linker=linker)
        )

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, results


def test_infinite_loop_is_interrupted_at_the_time_limit(stepped: SteppedRuntime) -> None:
    limits = RunLimits(200, LIMITS.max_memory_bytes, LIMITS.max_stdout_bytes, LIMITS.max_stderr_bytes)
    started = threading.Event()
    module, linker = signalling_loop(stepped, started)
    looping, results = run_in_thread(stepped, module, linker, limits)
    assert started.wait(10), "the guest never ran"

    stepped.advance_ms(200 - 2 * TICK_S * 1000)  # just short of the limit: the loop goes on
    looping.join(0.1)
    assert looping.is_alive(), f"the run ended before its time limit: {results}"
    stepped.advance_ms(3 * TICK_S * 1000)  # past it
    looping.join(10)

    assert not looping.is_alive(), "the run outlived its time limit"
    assert results[0].outcome is Outcome.TIMED_OUT, results


def test_memory_growth_beyond_the_cap_is_refused(runtime: WasmRuntime) -> None:
    result = run(runtime, guests.grows_memory_until_refused())
    assert result.outcome is Outcome.OUT_OF_MEMORY
    assert result.memory_bytes <= LIMITS.max_memory_bytes


def test_module_whose_initial_memory_exceeds_the_cap_does_not_compile(runtime: WasmRuntime) -> None:
    with pytest.raises(wasmtime.WasmtimeError, match="exceeds the limit of 0x400000 bytes"):
        runtime.compile(guests.module("", memory_pages=1024))


def test_stdout_flood_is_cut_at_the_cap(runtime: WasmRuntime) -> None:
    limits = RunLimits(300, LIMITS.max_memory_bytes, 100_000, 1024)
    result = run(runtime, guests.floods_stdout(), limits=limits)
    assert result.outcome is Outcome.OUTPUT_LIMIT
    assert len(result.stdout) <= 100_000


def test_stderr_over_its_cap_is_truncated_and_the_run_still_completes(runtime: WasmRuntime) -> None:
    result = run(runtime, guests.prints(b"ok", b"e" * 5000))
    assert result.outcome is Outcome.COMPLETED
    assert result.stderr_truncated and result.stderr == b"e" * 1024


def test_deep_recursion_traps_without_killing_the_process(runtime: WasmRuntime) -> None:
    result = run(runtime, guests.recurses_forever())
    assert result.outcome is Outcome.TRAPPED
    assert "stack" in result.detail.lower()


def test_runs_on_other_threads_proceed_while_one_loops(stepped: SteppedRuntime) -> None:
    started = threading.Event()
    module, linker = signalling_loop(stepped, started)
    looping, results = run_in_thread(stepped, module, linker, LIMITS)
    assert started.wait(10), "the guest never ran"

    fast = [run(stepped, guests.prints(b"fast")) for _ in range(20)]  # the clock stands still meanwhile

    assert looping.is_alive() and not results, "the loop should still be running"
    assert all(result.stdout == b"fast" for result in fast)
    stepped.advance_ms(LIMITS.timeout_ms + 10)
    looping.join(10)
    assert results[0].outcome is Outcome.TIMED_OUT, results


def test_a_run_after_a_flood_on_the_same_thread_is_not_affected_by_it(runtime: WasmRuntime) -> None:
    flood_limits = RunLimits(20, LIMITS.max_memory_bytes, 100_000, 1024)
    small = runtime.compile(guests.prints(b"ok", b"e" * 5000))
    flood = runtime.compile(guests.floods_stdout())
    for _ in range(30):
        flooded = runtime.run_command(flood, argv=["g"], env=[], stdin=b"", limits=flood_limits)
        result = runtime.run_command(small, argv=["g"], env=[], stdin=b"", limits=LIMITS)
        assert flooded.outcome is Outcome.OUTPUT_LIMIT
        assert (result.outcome, result.stdout, result.stderr) == (Outcome.COMPLETED, b"ok", b"e" * 1024)
