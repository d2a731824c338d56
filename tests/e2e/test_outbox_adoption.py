"""Outboxes left behind when the data plane's worker count changes are adopted, with real processes.

A data plane of `before` workers answers runs while Redis is down (their records go to each
worker's outbox, `outbox/<plane id>/`), is SIGKILLed, and starts again with `after` workers
once Redis is back. The outboxes of the plane ids the new count has no worker for (1 -> 2:
`e2e-data-plane-1`; 4 -> 2: `.../2` and `.../3`) must be drained by some worker: every
answered run is stored, once (the control plane counts no duplicate), and the orphaned
directories are removed.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from data_plane.outbox import outbox_directory
from data_plane.settings import worker_plane_ids
from tests.conftest import RedisServer
from tests.e2e.cluster import Cluster, wait_for_workers
from tests.e2e.conftest import ClusterFactory
from tests.e2e.processes import START_TIMEOUT_S
from tests.e2e.test_outbox import WAIT_S, assert_recorded, readable, wait_until

PLANE_ID = "e2e-data-plane-1"
"""The cluster's first data plane's FFAAS_PLANE_ID."""


def held_records(directory: Path) -> bool:
    return any(directory.glob("*.seg"))


def answer_until_held(
    cluster: Cluster, endpoint_id: str, outboxes: list[Path]
) -> dict[str, tuple[bytes, httpx.Response]]:
    """Call the endpoint, each call on a new connection (the kernel spreads connections over the
    workers), until every one of `outboxes` holds a record; the answered runs by conversation id."""
    answered: dict[str, tuple[bytes, httpx.Response]] = {}
    url = f"{cluster.data_planes[0].url}/{endpoint_id}/adoption"
    deadline = time.monotonic() + WAIT_S
    while not all(held_records(directory) for directory in outboxes):
        assert time.monotonic() < deadline, (
            f"after {len(answered)} runs, not every outbox holds a record: "
            f"{[(directory.name, held_records(directory)) for directory in outboxes]}"
        )
        sent = f"run {len(answered)} {uuid.uuid4()}".encode()
        response = httpx.post(url, content=sent, headers={"connection": "close"}, timeout=30.0)
        assert response.status_code == 200, f"{response.status_code} {response.text}"
        answered[response.headers["fh-conversation-id"]] = (sent, response)
    return answered


@pytest.mark.parametrize(("before", "after"), [(1, 2), (4, 2)])
def test_outboxes_of_workers_that_are_gone_are_written_once_by_the_new_workers(
    before: int, after: int, own_redis: RedisServer, cluster_factory: ClusterFactory, echo_wasm: bytes
) -> None:
    cluster = cluster_factory(redis=own_redis, workers=before)
    endpoint_id = cluster.new_deployed_endpoint("adoption", echo_wasm)
    plane = cluster.data_planes[0]
    data_dir = Path(plane.settings["FFAAS_DATA_DIR"])
    gone = [
        outbox_directory(data_dir, plane_id)
        for plane_id in worker_plane_ids(PLANE_ID, before)
        if plane_id not in worker_plane_ids(PLANE_ID, after)
    ]

    own_redis.stop()
    answered = answer_until_held(cluster, endpoint_id, gone)
    plane.kill()  # no worker of the old count is left to write what it holds
    own_redis.start()
    plane.settings["FFAAS_DATA_PLANE_WORKERS"] = str(after)
    plane.start()
    wait_for_workers(plane, time.monotonic() + START_TIMEOUT_S)

    for conversation_id, (sent, response) in answered.items():
        assert_recorded(readable(cluster, conversation_id), sent, response)
    wait_until(lambda: not any(directory.exists() for directory in gone), "the adopted outboxes to go")
    ingest = cluster.admin.get(f"{cluster.admin_url}/status").json()["ingest"]
    assert (ingest["stored"], ingest["duplicates"]) == (len(answered), 0), ingest
    log = plane.log_path.read_text(errors="replace").rpartition("=== starting")[2]
    assert all(f"adopting the conversation outbox {directory}" in log for directory in gone), log
