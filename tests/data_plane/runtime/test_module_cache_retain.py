"""The module cache lets go of what no route uses: memory at once, disk artifacts after the grace
period (a fake clock stands in for it), pinned modules never."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from data_plane.runtime.module_cache import ModuleCache
from data_plane.runtime.wasm import WasmRuntime
from tests.data_plane import guests

GRACE_S = 60.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def runtime() -> Iterator[WasmRuntime]:
    with WasmRuntime(max_concurrent_runs=2, max_memory_bytes=1 << 20) as runtime:
        yield runtime


def artifacts(directory: Path) -> set[str]:
    return {path.name for path in directory.rglob("*.cwasm")}


def test_unused_modules_leave_memory_at_once_and_disk_after_the_grace_period(
    runtime: WasmRuntime, tmp_path: Path
) -> None:
    clock = FakeClock()
    cache = ModuleCache(runtime, tmp_path, disk_grace_s=GRACE_S, clock=clock)
    for name in ("old", "new", "engine"):
        cache.load_or_compile(name, lambda: guests.prints(b"x"), pin=name == "engine")
    every_file = {f"{name}.cwasm" for name in ("old", "new", "engine")}
    assert artifacts(tmp_path) == every_file

    cache.retain({"new"})
    assert (cache.get("old"), cache.in_memory) == (None, 2)  # new, and the pinned engine
    assert artifacts(tmp_path) == every_file  # within the grace period: a rollback loads from disk

    clock.now += GRACE_S - 1
    cache.retain({"new"})
    assert artifacts(tmp_path) == every_file
    clock.now += 1
    cache.retain({"new"})
    assert artifacts(tmp_path) == every_file - {"old.cwasm"}
    assert cache.artifacts_deleted == 1


def test_a_module_used_again_within_the_grace_period_keeps_its_artifact(
    runtime: WasmRuntime, tmp_path: Path
) -> None:
    clock = FakeClock()
    cache = ModuleCache(runtime, tmp_path, disk_grace_s=GRACE_S, clock=clock)
    cache.load_or_compile("v1", lambda: guests.prints(b"1"))
    cache.load_or_compile("v2", lambda: guests.prints(b"2"))
    cache.retain({"v2"})
    clock.now += GRACE_S / 2
    cache.retain({"v1"})  # rolled back
    clock.now += GRACE_S / 2
    cache.retain({"v1"})
    assert "v1.cwasm" in artifacts(tmp_path) and "v2.cwasm" in artifacts(tmp_path)
    clock.now += GRACE_S / 2
    cache.retain({"v1"})
    assert "v1.cwasm" in artifacts(tmp_path) and "v2.cwasm" not in artifacts(tmp_path)


def test_artifacts_left_by_an_earlier_process_are_collected_after_the_grace_period(
    runtime: WasmRuntime, tmp_path: Path
) -> None:
    ModuleCache(runtime, tmp_path).load_or_compile("earlier", lambda: guests.prints(b"e"))
    clock = FakeClock()
    cache = ModuleCache(runtime, tmp_path, disk_grace_s=GRACE_S, clock=clock)
    cache.retain(set())
    assert "earlier.cwasm" in artifacts(tmp_path)
    clock.now += GRACE_S
    cache.retain(set())
    assert artifacts(tmp_path) == set()
