"""A control plane SIGKILLed after reading a run's record and before acknowledging it loses nothing.

The kill lands at a known point, without timing: the test holds the write lock of the
control plane's SQLite file, so its ingest reads the record from the stream and then waits
on the lock. The test sees the entry pending in Redis (read, not acknowledged), and only
then sends SIGKILL.

The claim idle time is ten minutes: no take-over of idle entries can explain a pass.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis

from shared.keys import Keys
from tests.conftest import free_port
from tests.e2e.cluster import Cluster
from tests.e2e.conftest import ClusterFactory
from tests.e2e.processes import Plane

SETTINGS = {"FFAAS_CONTROL_PLANE_ID": "control-plane-a", "FFAAS_INGEST_CLAIM_IDLE_MS": "600000"}
WAIT_S = 20.0


def test_a_get_on_another_control_plane_finds_the_run_the_killed_one_had_read(
    cluster_factory: ClusterFactory, echo_wasm: bytes
) -> None:
    cluster = cluster_factory(settings=SETTINGS)
    endpoint_id = cluster.new_deployed_endpoint("crash", echo_wasm)
    conversation_id = run_then_kill_the_control_plane_holding_it(cluster, endpoint_id)

    with another_control_plane(cluster, "control-plane-b") as second:
        response = httpx.get(f"{second.url}/conversation/{conversation_id}", timeout=10.0)

        assert response.status_code == 200, f"{response.status_code} {response.text}"
        conversation = response.json()
        assert [item["kind"] for item in conversation["audit_items"]] == ["request", "log", "response"]
        assert conversation["endpoint_id"] == endpoint_id
        assert pending(cluster) == {}


def test_a_restarted_control_plane_stores_what_it_had_read_at_once(
    cluster_factory: ClusterFactory, echo_wasm: bytes
) -> None:
    cluster = cluster_factory(settings=SETTINGS)
    endpoint_id = cluster.new_deployed_endpoint("crash", echo_wasm)
    conversation_id = run_then_kill_the_control_plane_holding_it(cluster, endpoint_id)
    control_plane = cluster.control_plane
    assert control_plane is not None

    control_plane.start()

    # No GET: only its reader, taking up its own pending entries at start, can store it.
    wait_until(lambda: stored(cluster.database_path, conversation_id), "the conversation to be stored")
    wait_until(lambda: pending(cluster) == {}, "its entry to be acknowledged (right after the commit)")
    assert control_plane.status()["ingest"]["consumer"] == "control-plane-a"


def run_then_kill_the_control_plane_holding_it(cluster: Cluster, endpoint_id: str) -> str:
    """Make a run; SIGKILL the control plane once it holds the run's record read and unacknowledged."""
    control_plane = cluster.control_plane
    assert control_plane is not None
    with sqlite_write_lock(cluster.database_path):
        response = cluster.call(cluster.data_planes[0], endpoint_id, "/before/the/crash")
        assert response.status_code == 200, response.text
        conversation_id = response.headers["fh-conversation-id"]
        wait_until(lambda: sum(pending(cluster).values()) == 1, "the record to be read by the control plane")
        control_plane.kill()
    assert not stored(cluster.database_path, conversation_id)
    assert pending(cluster) == {"control-plane-a": 1}, "the consumer is named by FFAAS_CONTROL_PLANE_ID"
    return conversation_id


@contextmanager
def sqlite_write_lock(database: Path) -> Iterator[None]:
    """Hold the database's write lock: the control plane can read the stream but not commit."""
    connection = sqlite3.connect(database, timeout=10.0, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


@contextmanager
def another_control_plane(cluster: Cluster, control_plane_id: str) -> Iterator[Plane]:
    """A second control plane on the same database and Redis, under its own name and port."""
    first = cluster.control_plane
    assert first is not None
    port = free_port()
    plane = Plane(
        "control_plane",
        port=port,
        settings={
            **first.settings,
            "FFAAS_CONTROL_PLANE_PORT": str(port),
            "FFAAS_CONTROL_PLANE_ID": control_plane_id,
        },
        log_path=cluster.workdir / "logs" / f"{control_plane_id}.log",
    )
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


def pending(cluster: Cluster) -> dict[str, int]:
    """Consumer -> entries of the conversation stream it holds read and not acknowledged."""
    keys = Keys(cluster.prefix)
    client = redis.Redis.from_url(cluster.redis.url)
    try:
        summary = client.xpending(keys.conversations, keys.ingest_group)
    finally:
        client.close()
    return {consumer["name"].decode(): int(consumer["pending"]) for consumer in summary["consumers"]}


def stored(database: Path, conversation_id: str) -> bool:
    with sqlite3.connect(database, timeout=10.0) as connection:
        row = connection.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
    return row is not None


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {WAIT_S:.0f} s waiting for {what}"
        time.sleep(0.01)
