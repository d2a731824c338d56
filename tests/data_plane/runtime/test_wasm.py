"""The wasm runtime on inline WAT guests: output, limits and trap outcomes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import wasmtime

from data_plane.runtime.wasm import CommandResult, Outcome, RunLimits, WasmRuntime
from tests.data_plane import guests

LIMITS = RunLimits(timeout_ms=1000, max_memory_bytes=4 << 20, max_stdout_bytes=1 << 20, max_stderr_bytes=1024)


@pytest.fixture(scope="module")
def runtime() -> Iterator[WasmRuntime]:
    runtime = WasmRuntime(max_concurrent_runs=8, max_memory_bytes=LIMITS.max_memory_bytes)
    yield runtime
    runtime.close()


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


def test_infinite_loop_is_interrupted_at_the_time_limit(runtime: WasmRuntime) -> None:
    limits = RunLimits(200, LIMITS.max_memory_bytes, LIMITS.max_stdout_bytes, LIMITS.max_stderr_bytes)
    result = run(runtime, guests.loops_forever(), limits=limits)
    assert result.outcome is Outcome.TIMED_OUT
    assert 200 <= result.elapsed_ms < 1000


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


def test_runs_on_other_threads_proceed_while_one_loops(runtime: WasmRuntime) -> None:
    slow = RunLimits(1500, LIMITS.max_memory_bytes, LIMITS.max_stdout_bytes, LIMITS.max_stderr_bytes)
    looping = threading.Thread(target=run, args=(runtime, guests.loops_forever()), kwargs={"limits": slow})
    looping.start()
    time.sleep(0.05)
    fast = [run(runtime, guests.prints(b"fast")) for _ in range(20)]
    assert looping.is_alive(), "the loop should still be running while the fast runs finished"
    looping.join()
    assert all(result.stdout == b"fast" for result in fast)


def test_a_run_after_a_flood_on_the_same_thread_is_not_affected_by_it(runtime: WasmRuntime) -> None:
    flood_limits = RunLimits(20, LIMITS.max_memory_bytes, 100_000, 1024)
    small = runtime.compile(guests.prints(b"ok", b"e" * 5000))
    flood = runtime.compile(guests.floods_stdout())
    for _ in range(30):
        flooded = runtime.run_command(flood, argv=["g"], env=[], stdin=b"", limits=flood_limits)
        result = runtime.run_command(small, argv=["g"], env=[], stdin=b"", limits=LIMITS)
        assert flooded.outcome is Outcome.OUTPUT_LIMIT
        assert (result.outcome, result.stdout, result.stderr) == (Outcome.COMPLETED, b"ok", b"e" * 1024)
