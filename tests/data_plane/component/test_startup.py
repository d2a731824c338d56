"""Starting and stopping the data plane: a start-up that fails part-way leaves nothing running."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from data_plane.app import create_app
from data_plane.settings import Settings


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
