"""Starting and stopping the data plane: a start-up that fails part-way leaves nothing running."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from data_plane.app import create_app
from data_plane.settings import Settings
from tests.data_plane.component.conftest import Publisher
from tests.data_plane.component.upstreams import wait_for


def plane_threads() -> list[str]:
    return sorted(thread.name for thread in threading.enumerate() if thread.name.startswith("ffaas-"))


def test_building_the_app_starts_no_thread(settings: Settings) -> None:
    before = plane_threads()
    create_app(settings)
    assert plane_threads() == before


def test_a_start_up_that_fails_part_way_leaves_no_ticker_and_no_plane_thread(settings: Settings) -> None:
    before = plane_threads()
    # Settings are validated by `from_environ`; built directly, a malformed value fails late in
    # the lifespan, after the runtime, Redis, route sync and V8 have started.
    broken = replace(settings, outbound_allow="not-a-network/99")
    with pytest.raises(ValueError, match="FFAAS_OUTBOUND_ALLOW"), TestClient(create_app(broken)):
        pass
    assert "ffaas-epoch-ticker" not in plane_threads()
    deadline = time.monotonic() + 10
    while plane_threads() != before and time.monotonic() < deadline:
        time.sleep(0.02)  # thread pools shut down without joining end their idle threads soon after
    assert plane_threads() == before
    with TestClient(create_app(settings)) as client:  # and the plane starts fine afterwards
        assert client.get("/status").json()["status"] == "ok"


def engine_workers() -> list[int]:
    """This process's children running the V8 engine worker."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"worker.js" in command:
            found.append(int(proc.name))
    return found


def test_a_start_up_that_fails_after_the_v8_engines_started_leaves_no_engine_worker(
    settings: Settings, publisher: Publisher
) -> None:
    publisher.processor("function main(r) { return 'x'; }", runtime="v8")  # engines start with the plane
    broken = replace(settings, outbound_allow="not-a-network/99")
    with pytest.raises(ValueError, match="FFAAS_OUTBOUND_ALLOW"), TestClient(create_app(broken)):
        pass
    assert engine_workers() == []
    with TestClient(create_app(settings)) as client:
        assert len(client.get("/status").json()["v8_engine_pids"]) == 1
        assert engine_workers() == client.get("/status").json()["v8_engine_pids"]
    assert engine_workers() == []


def test_a_v8_processor_published_to_a_running_plane_starts_the_engines_before_its_first_run(
    publisher: Publisher, settings: Settings
) -> None:
    """Its first run must not wait ~100 ms for the engine workers to start."""
    with TestClient(create_app(settings)) as client:
        assert client.get("/status").json()["v8_engine_pids"] == [], "no V8 processor: no engine"
        processor_id = publisher.processor("function main() { return 'hi'; }")
        wait_for(lambda: client.get("/status").json()["v8_engine_pids"] != [], what="the engines to start")
        assert client.get(f"/processor/{processor_id}/run").text == "hi"
