"""The disk module cache shared by several processes (the data plane's workers) at once.

Real processes (multiprocessing, spawn) on one cache directory: they race on the same
missing modules, rewrite artifacts while others read them, and a torn file is never loaded.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from data_plane.runtime import module_cache
from data_plane.runtime.module_cache import ModuleCache
from data_plane.runtime.wasm import RunLimits, WasmRuntime
from shared.content_hash import content_hash
from tests.data_plane import guests

LIMITS = RunLimits(timeout_ms=5000, max_memory_bytes=4 << 20, max_stdout_bytes=1 << 20, max_stderr_bytes=1024)
PROCESSES = 4
ROUNDS = 5
REWRITES = 60
JOIN_TIMEOUT_S = 120.0
SPAWN = multiprocessing.get_context("spawn")


def new_runtime() -> WasmRuntime:
    runtime = WasmRuntime(max_concurrent_runs=2, max_memory_bytes=LIMITS.max_memory_bytes)
    runtime.start()
    return runtime


def output_of(runtime: WasmRuntime, module: Any) -> bytes:
    return runtime.run_command(module, argv=["guest"], env=[], stdin=b"", limits=LIMITS).stdout


def must_not_compile() -> bytes:
    raise AssertionError("the module was compiled although a complete artifact was on disk")


# -- what each child process runs (module level, so that spawn can import it) ---------------------------


def race_for_modules(directory: str, barrier: Barrier, results: Any) -> None:
    """Each round: wait for every process, then all ask for the same module, missing from the cache."""
    runtime = new_runtime()
    cache = ModuleCache(runtime, Path(directory))
    outputs = []
    for number in range(ROUNDS):
        wasm = guests.prints(f"round {number}".encode())
        barrier.wait()
        outputs.append(output_of(runtime, cache.load_or_compile(content_hash(wasm), lambda w=wasm: w)))
    results.put((cache.compiled, cache.loaded_from_disk, outputs))
    runtime.close()


def rewrite_artifact(directory: str, module_hash: str, barrier: Barrier) -> None:
    """Replaces the artifact of `module_hash` REWRITES times, alternating two different modules."""
    runtime = new_runtime()
    cache = ModuleCache(runtime, Path(directory))
    versions = [runtime.compile(guests.prints(b"A" * 5000)), runtime.compile(guests.prints(b"B"))]
    barrier.wait()
    for number in range(REWRITES):
        cache._store(module_hash, versions[number % 2])
    runtime.close()


def read_artifact(directory: str, module_hash: str, barrier: Barrier, results: Any) -> None:
    """Loads `module_hash` from disk (a fresh cache each time) while it is being rewritten."""
    runtime = new_runtime()
    outputs = set()
    barrier.wait()
    for _ in range(REWRITES):
        cache = ModuleCache(runtime, Path(directory))
        outputs.add(output_of(runtime, cache.load_or_compile(module_hash, must_not_compile)))
    results.put(sorted(outputs))
    runtime.close()


def run_all(processes: list[Any]) -> None:
    for process in processes:
        process.start()
    for process in processes:
        process.join(JOIN_TIMEOUT_S)
        assert process.exitcode == 0, f"{process.name} exited with {process.exitcode}"


# -- tests ----------------------------------------------------------------------------------------------


@pytest.fixture
def runtime() -> Iterator[WasmRuntime]:
    runtime = new_runtime()
    yield runtime
    runtime.close()


def test_processes_asking_for_the_same_missing_module_compile_it_once(tmp_path: Path) -> None:
    barrier, results = SPAWN.Barrier(PROCESSES), SPAWN.SimpleQueue()
    processes = [
        SPAWN.Process(target=race_for_modules, args=(str(tmp_path), barrier, results), name=f"racer-{n}")
        for n in range(PROCESSES)
    ]

    run_all(processes)

    reports = [results.get() for _ in processes]
    expected = [f"round {number}".encode() for number in range(ROUNDS)]
    assert all(outputs == expected for _, _, outputs in reports), reports
    assert sum(compiled for compiled, _, _ in reports) == ROUNDS, reports
    assert sum(loaded for _, loaded, _ in reports) == ROUNDS * (PROCESSES - 1), reports
    leftovers = [path.name for path in tmp_path.rglob("*") if path.is_file() and ".tmp" in path.name]
    assert leftovers == []


def test_a_reader_never_sees_a_partial_or_mixed_artifact_while_it_is_rewritten(
    tmp_path: Path, runtime: WasmRuntime
) -> None:
    module_hash = "rewritten"
    ModuleCache(runtime, tmp_path).load_or_compile(module_hash, lambda: guests.prints(b"B"))
    readers = 3
    barrier, results = SPAWN.Barrier(readers + 1), SPAWN.SimpleQueue()
    processes = [SPAWN.Process(target=rewrite_artifact, args=(str(tmp_path), module_hash, barrier))]
    processes += [
        SPAWN.Process(target=read_artifact, args=(str(tmp_path), module_hash, barrier, results))
        for _ in range(readers)
    ]

    run_all(processes)  # a reader that had to compile (a torn or mixed file) fails in must_not_compile

    seen = set().union(*(results.get() for _ in range(readers)))
    assert seen <= {b"A" * 5000, b"B"}


def test_a_torn_artifact_is_ignored_recompiled_and_replaced(tmp_path: Path, runtime: WasmRuntime) -> None:
    wasm = guests.prints(b"whole")
    module_hash = content_hash(wasm)
    ModuleCache(runtime, tmp_path).load_or_compile(module_hash, lambda: wasm)
    [artifact] = tmp_path.rglob("*.cwasm")
    complete = artifact.read_bytes()
    artifact.write_bytes(complete[: len(complete) // 2])  # what a crash in a non-atomic write leaves

    recovering = ModuleCache(runtime, tmp_path)
    assert output_of(runtime, recovering.load_or_compile(module_hash, lambda: wasm)) == b"whole"
    assert (recovering.compiled, recovering.loaded_from_disk) == (1, 0)

    after = ModuleCache(runtime, tmp_path)
    assert output_of(runtime, after.load_or_compile(module_hash, must_not_compile)) == b"whole"
    assert (after.compiled, after.loaded_from_disk) == (0, 1)


def test_an_artifact_of_another_format_is_not_loaded(tmp_path: Path, runtime: WasmRuntime) -> None:
    wasm = guests.prints(b"fresh")
    module_hash = content_hash(wasm)
    directory = tmp_path / runtime.fingerprint
    directory.mkdir()
    (directory / f"{module_hash}.cwasm").write_bytes(bytes(runtime.compile(wasm).serialize()))  # no header

    cache = ModuleCache(runtime, tmp_path)
    assert output_of(runtime, cache.load_or_compile(module_hash, lambda: wasm)) == b"fresh"
    assert (cache.compiled, cache.loaded_from_disk) == (1, 0)


def test_a_lock_held_elsewhere_delays_a_compile_only_a_bounded_time(
    tmp_path: Path, runtime: WasmRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module_cache, "LOCK_WAIT_S", 0.05)
    wasm = guests.prints(b"unlocked")
    module_hash = content_hash(wasm)
    cache = ModuleCache(runtime, tmp_path)
    holder = os.open(tmp_path / runtime.fingerprint / f"{module_hash}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)  # as a process stuck while compiling would hold it

        assert output_of(runtime, cache.load_or_compile(module_hash, lambda: wasm)) == b"unlocked"
    finally:
        os.close(holder)
    assert cache.compiled == 1
