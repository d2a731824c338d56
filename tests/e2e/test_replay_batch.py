"""Batch replays end to end: many recorded runs replayed in the background, their report, and live
traffic served while a batch runs.

Real processes throughout (redis-server, the control plane, a data plane) and a local HTTP server
that processors relay to, which can hold the requests it receives at a barrier: while it holds
them, the batch's replays (FFAAS_REPLAY_CONCURRENCY=2 at a time, `live` mode) cannot finish, so
whatever is answered meanwhile was answered while the batch was in progress.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import RedisServer
from tests.e2e.cluster import UUID, Cluster, assert_error
from tests.e2e.conftest import running_cluster
from tests.e2e.processes import Plane

RUNS = 100
WAIT_S = 60.0

RELAY_V1 = """async function main(fh, request) {
  const answer = await fh.dispatch_request('%(url)s/relay', {method: 'POST', body: request.body});
  return {code: 200, headers: {'content-type': 'application/json'}, body: answer.body};
}"""
RELAY_V2 = """async function main(fh, request) {
  const answer = await fh.dispatch_request('%(url)s/relay', {method: 'POST', body: request.body});
  const even = Number(request.body) %% 2 === 0;
  const body = even ? JSON.stringify({relayed: JSON.parse(answer.body), even: true}) : answer.body;
  return {code: 200, headers: {'content-type': 'application/json'}, body};
}"""


class HoldingServer:
    """Answers `{"received": <body>}`; while `holding` is set, each request first signals `entered`
    and waits for `release` (at most `WAIT_S`)."""

    def __init__(self) -> None:
        self.holding = threading.Event()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.received: list[bytes] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                server.received.append(body)
                if server.holding.is_set():
                    server.entered.set()
                    server.release.wait(WAIT_S)
                answer = json.dumps({"received": body.decode()}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("connection", "close")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HoldingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class Probe:
    """Plain requests to a live endpoint, one after another on a thread, until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30.0) as client:
            while not self._stop.is_set():
                self.statuses.append(client.get(self.url).status_code)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(WAIT_S)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    settings = {"FFAAS_OUTBOUND_ALLOW": "127.0.0.1", "FFAAS_REPLAY_CONCURRENCY": "2"}
    with running_cluster(tmp_path_factory.mktemp("replay-batch"), redis_server, settings=settings) as cluster:
        yield cluster


@pytest.fixture
def plane(cluster: Cluster) -> Plane:
    return cluster.data_planes[0]


def wait_until(condition: Any, what: str) -> None:
    """Poll `condition()` until true; fail naming `what` after `WAIT_S` (a wait, never the assertion)."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def batch_report(cluster: Cluster, batch_id: str) -> dict[str, Any]:
    response = cluster.admin.get(f"{cluster.admin_url}/replay/{batch_id}")
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def finished_report(cluster: Cluster, batch_id: str) -> dict[str, Any]:
    wait_until(lambda: batch_report(cluster, batch_id)["state"] != "running", f"batch {batch_id} to finish")
    return batch_report(cluster, batch_id)


def test_a_batch_of_100_runs_reports_what_differs_while_live_traffic_is_served(
    cluster: Cluster, plane: Plane, hello_wasm: bytes
) -> None:
    live_endpoint = cluster.new_deployed_endpoint("live traffic", hello_wasm)
    with HoldingServer() as server:
        processor = cluster.create_processor(RELAY_V1 % {"url": server.url}, name="batch relay")
        originals = []
        for number in range(RUNS):
            run = cluster.run_processor(
                processor["id"], method="POST", content=str(number).encode(), plane=plane
            )
            assert run.status_code == 200, run.text
            originals.append(run.headers["fh-conversation-id"])
        fields = {
            "name": "batch relay",
            "language": "js",
            "runtime": "v8",
            "code": RELAY_V2 % {"url": server.url},
        }
        saved = cluster.admin.put(f"{cluster.admin_url}/admin/processor/{processor['id']}", json=fields)
        assert saved.status_code == 200, saved.text
        v2 = saved.json()["active_version_id"]
        server.holding.set()

        with Probe(f"{plane.url}/{live_endpoint}") as probe:
            started = cluster.admin.post(
                f"{cluster.admin_url}/admin/processor/{processor['id']}/replay",
                json={"processor_version_id": v2, "outbound": "live", "limit": RUNS},
            )
            assert started.status_code == 202, started.text
            batch_id = started.json()["id"]
            assert started.headers["location"] == f"/replay/{batch_id}"
            assert started.json()["total"] == RUNS
            assert server.entered.wait(WAIT_S), "no replay reached the local server"
            wait_until(lambda: len(server.received) == RUNS + 2, "both replay slots to be taken")
            answered_before = len(probe.statuses)
            wait_until(lambda: len(probe.statuses) >= answered_before + 10, "10 probe requests")

            held = batch_report(cluster, batch_id)  # the batch cannot move while its replays are held
            assert held["state"] == "running" and held["done"] < RUNS, held
            status = cluster.http.get(f"{cluster.admin_url}/status").json()
            assert (status["replay_batches_running"], status["replay_runs_in_flight"]) == (1, 2)
            assert len(server.received) == RUNS + 2  # FFAAS_REPLAY_CONCURRENCY bounds the batch
            server.release.set()
            report = finished_report(cluster, batch_id)

        assert probe.statuses and set(probe.statuses) == {200}
    assert len(probe.statuses) >= answered_before + 10
    assert len(server.received) == 2 * RUNS
    assert report["state"] == "finished" and report["finished_at"] is not None
    assert report["target"] == {"processor_version_id": v2}
    assert report["outbound"] == "live"
    assert (report["total"], report["done"], report["replayed"], report["errors"]) == (RUNS, RUNS, RUNS, 0)
    assert (report["differ"], report["same"]) == (RUNS // 2, RUNS // 2)
    assert report["differs_in"] == {
        "status": 0,
        "outcome": 0,
        "headers": 0,
        "body": RUNS // 2,
        "logs": 0,
        "outbound": 0,
    }
    runs = report["runs"]
    assert [run["original"] for run in runs] == originals  # oldest first
    assert [run["differs"] for run in runs] == [number % 2 == 0 for number in range(RUNS)]
    assert all(UUID.fullmatch(run["replay"]) and run["error"] is None for run in runs)
    replay = cluster.http.get(f"{cluster.admin_url}/conversation/{runs[4]['replay']}").json()
    assert (replay["replay_of"], replay["replay_mode"], replay["processor_version_id"]) == (
        originals[4],
        "live",
        v2,
    )
    listed = cluster.admin.get(f"{cluster.admin_url}/replay", params={"processor_id": processor["id"]})
    assert [batch["id"] for batch in listed.json()["batches"]] == [batch_id]
    assert "runs" not in listed.json()["batches"][0]


def test_an_endpoint_batch_selects_original_runs_by_time_and_against_an_inactive_deploy(
    cluster: Cluster, plane: Plane, echo_wasm: bytes, hello_wasm: bytes
) -> None:
    endpoint_id = cluster.new_deployed_endpoint("batched endpoint", echo_wasm)
    early = [cluster.call(plane, endpoint_id).headers["fh-conversation-id"] for _ in range(2)]
    early_conversation = cluster.http.get(f"{cluster.admin_url}/conversation/{early[-1]}").json()
    late = [cluster.call(plane, endpoint_id, f"/{n}").headers["fh-conversation-id"] for n in range(3)]
    since = cluster.http.get(f"{cluster.admin_url}/conversation/{late[0]}").json()["created_at"]
    assert since > early_conversation["created_at"]
    hello = cluster.admin.post(
        f"{cluster.admin_url}/endpoint/{endpoint_id}/deploy?activate=false", content=hello_wasm
    ).json()
    single = cluster.admin.post(
        f"{cluster.admin_url}/conversation/{late[0]}/replay", json={"deploy_id": hello["id"]}
    )
    assert single.status_code == 200, single.text

    started = cluster.admin.post(
        f"{cluster.admin_url}/endpoint/{endpoint_id}/replay",
        json={"deploy_id": hello["id"], "since": since, "outcome": "completed", "limit": 10},
    )

    assert started.status_code == 202, started.text
    report = finished_report(cluster, started.json()["id"])
    assert [run["original"] for run in report["runs"]] == late  # no earlier run, no replay
    assert report["selection"] == {"limit": 10, "since": since, "outcome": "completed"}
    assert (report["endpoint_id"], report["target"]) == (endpoint_id, {"deploy_id": hello["id"]})
    assert (report["replayed"], report["differ"], report["errors"]) == (3, 3, 0)
    assert report["differs_in"]["body"] == 3


def test_a_batch_is_refused_with_a_bad_selection_or_target(cluster: Cluster, echo_wasm: bytes) -> None:
    endpoint_id = cluster.new_deployed_endpoint("refusals", echo_wasm)
    url = f"{cluster.admin_url}/endpoint/{endpoint_id}/replay"
    deploy_id = cluster.get_endpoint(endpoint_id).json()["active_deploy_id"]

    assert_error(
        cluster.admin.post(url, json={"deploy_id": deploy_id, "limit": 0}), 400, "FFAAS_REPLAY_BATCH_MAX_RUNS"
    )
    assert_error(cluster.admin.post(url, json={"deploy_id": deploy_id, "since": "yesterday"}), 400, "since")
    assert_error(cluster.admin.post(url, json={"deploy_id": deploy_id, "outbound": "live"}), 400, "outbound")
    assert_error(
        cluster.admin.post(url, json={"processor_version_id": deploy_id}), 400, "processor_version_id"
    )
    unknown = "00000000-0000-4000-8000-000000000000"
    assert_error(cluster.admin.post(url, json={"deploy_id": unknown}), 404, unknown)
    assert_error(
        cluster.admin.post(f"{cluster.admin_url}/endpoint/{unknown}/replay", json={"deploy_id": deploy_id}),
        404,
        unknown,
    )
    assert_error(cluster.admin.get(f"{cluster.admin_url}/replay/{unknown}"), 404, unknown)
    assert_error(cluster.http.post(url, json={"deploy_id": deploy_id}), 401)
