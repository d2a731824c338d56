"""A data plane of several worker processes on one port (FFAAS_DATA_PLANE_WORKERS), end to end.

Which worker serves a request is the kernel's choice (SO_REUSEPORT spreads connections by
a hash), so the tests open fresh connections until they met every worker, with a generous
bound on the number of attempts. One keep-alive connection is served by one worker from
start to end, so `GET /status` and then a run on the same connection tell which worker ran it.

The cluster's control plane waits up to 10 minutes for deploy acknowledgements: a data
plane that counted a worker which cannot answer (a "ghost") would make a deploy hang past
the HTTP client's 30 s and fail the test.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.data_plane import guests
from tests.e2e.cluster import Cluster, wait_for_workers
from tests.e2e.conftest import ClusterFactory
from tests.e2e.processes import Plane

WORKERS = 2
ATTEMPTS = 300
"""Fresh connections tried to meet every worker: with two, missing one 300 times is 2**-299 likely."""
WAIT_S = 30.0
SETTINGS = {"FFAAS_DEPLOY_ACK_TIMEOUT_MS": "600000", "FFAAS_OUTBOUND_ALLOW": "127.0.0.1"}


def version(number: int) -> bytes:
    return guests.prints(f"Content-Type: text/plain\n\nversion {number}".encode())


@pytest.fixture
def cluster(cluster_factory: ClusterFactory) -> Cluster:
    return cluster_factory(workers=WORKERS, settings=SETTINGS)


@pytest.fixture
def plane(cluster: Cluster) -> Plane:
    return cluster.data_planes[0]


def status_on_a_fresh_connection(plane: Plane) -> dict[str, Any]:
    with httpx.Client(timeout=10.0) as client:
        response = client.get(f"{plane.url}/status")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def meet_every_worker(plane: Plane, visit: Callable[[httpx.Client], Any]) -> dict[int, list[Any]]:
    """Fresh connections until every worker was met: on each, `GET /status` names the worker, then
    `visit(client)` runs on the same connection (so on that worker). Worker -> what `visit` gave."""
    seen: dict[int, list[Any]] = {}
    for _ in range(ATTEMPTS):
        with httpx.Client(timeout=30.0) as client:
            status = client.get(f"{plane.url}/status").json()
            seen.setdefault(status["worker"], []).append(visit(client))
        if len(seen) == WORKERS:
            return seen
    raise AssertionError(f"only workers {sorted(seen)} of {WORKERS} answered {ATTEMPTS} fresh connections")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie has closed its sockets already)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(condition: Callable[[], bool], what: str, plane: Plane) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {WAIT_S} s\n{plane.describe_log()}"
        time.sleep(0.02)


def log_since_start(plane: Plane) -> str:
    return plane.log_path.read_text(errors="replace").rpartition("=== starting")[2]


def test_every_worker_answers_on_the_one_port_as_a_plane_of_its_own(plane: Plane) -> None:
    statuses: dict[int, dict[str, Any]] = {}
    for _ in range(ATTEMPTS):
        status = status_on_a_fresh_connection(plane)
        statuses[status["worker"]] = status
        if len(statuses) == WORKERS:
            break

    assert sorted(statuses) == list(range(WORKERS))
    base = plane.settings["FFAAS_PLANE_ID"]
    for index, status in statuses.items():
        assert status["workers"] == WORKERS
        assert status["plane_id"] == f"{base}/{index}"
        assert status["redis"] == "ok"
    assert len({status["pid"] for status in statuses.values()}) == WORKERS


def test_a_deploy_is_served_by_every_worker_right_after_its_answer(cluster: Cluster, plane: Plane) -> None:
    endpoint_id = cluster.create_endpoint("everywhere")["id"]

    for number in (1, 2):
        cluster.deploy(endpoint_id, version(number))

        served = meet_every_worker(plane, lambda client: client.get(f"{plane.url}/{endpoint_id}").text)
        answers = [answer for per_worker in served.values() for answer in per_worker]
        assert set(answers) == {f"version {number}"}, served

    assert cluster.control_plane is not None  # each worker received (and acknowledged) each deploy
    published = re.findall(
        rf"published endpoint {endpoint_id} \(deploy \S+\) to (\d+) data plane",
        log_since_start(cluster.control_plane),
    )
    assert published == [str(WORKERS)] * 2


def test_a_killed_worker_is_started_again_and_the_plane_keeps_serving(cluster: Cluster, plane: Plane) -> None:
    endpoint_id = cluster.create_endpoint("survivor")["id"]
    cluster.deploy(endpoint_id, version(1))
    victim = meet_every_worker(plane, lambda client: client.get(f"{plane.url}/status").json())[0][0]

    os.kill(victim["pid"], signal.SIGKILL)
    wait_until(lambda: not alive(victim["pid"]), "the killed worker is gone", plane)

    answers, resets = [], []

    def replaced() -> bool:
        try:
            with httpx.Client(timeout=10.0) as client:
                answers.append(client.get(f"{plane.url}/{endpoint_id}").text)
                status = client.get(f"{plane.url}/status").json()
        except httpx.TransportError as exc:  # a connection caught in the dying worker's queue
            resets.append(exc)
            return False
        return status["worker"] == victim["worker"] and status["pid"] != victim["pid"]

    wait_until(replaced, "a new worker 0 answers", plane)
    assert set(answers) == {"version 1"}  # the other worker served while worker 0 was away
    assert len(answers) > len(resets), resets
    assert re.search(rf"worker 0 \(pid {victim['pid']}\) was killed by SIGKILL", log_since_start(plane))
    assert plane.running

    cluster.deploy(endpoint_id, version(2))  # acknowledged by both workers: no ghost of the killed one
    statuses = meet_every_worker(plane, lambda client: client.get(f"{plane.url}/status").json())
    assert statuses[0][0]["plane_id"] == victim["plane_id"]  # the same plane id as before its death
    served = meet_every_worker(plane, lambda client: client.get(f"{plane.url}/{endpoint_id}").text)
    assert {answer for per_worker in served.values() for answer in per_worker} == {"version 2"}


class HeldTarget:
    """A local HTTP server whose answer waits until the test releases it."""

    def __init__(self) -> None:
        self.arrived, self.release = threading.Event(), threading.Event()
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                target.arrived.set()
                target.release.wait(WAIT_S)
                self.send_response(200)
                self.send_header("content-length", "4")
                self.send_header("connection", "close")
                self.end_headers()
                self.wfile.write(b"held")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> HeldTarget:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def held_target() -> Iterator[HeldTarget]:
    with HeldTarget() as target:
        yield target


def test_sigterm_to_the_supervisor_drains_every_worker_and_leaves_no_process(
    cluster: Cluster, plane: Plane, held_target: HeldTarget
) -> None:
    code = (
        "async function main(fh, request) {"
        f"  const answer = await fh.dispatch_request({held_target.url!r}, {{method: 'GET'}});"
        "  return {code: 200, body: 'drained: ' + answer.body}; }"
    )
    processor_id = cluster.create_processor(code)["id"]
    workers = meet_every_worker(plane, lambda client: client.get(f"{plane.url}/status").json())
    in_flight: list[httpx.Response] = []
    caller = threading.Thread(
        target=lambda: in_flight.append(cluster.run_processor(processor_id, plane=plane))
    )
    caller.start()
    assert held_target.arrived.wait(WAIT_S), plane.describe_log()
    supervisor = plane.process
    assert supervisor is not None

    supervisor.send_signal(signal.SIGTERM)  # the supervisor alone, not its process group
    wait_until(lambda: log_since_start(plane).count("Shutting down") == WORKERS, "workers shut down", plane)
    held_target.release.set()
    caller.join(WAIT_S)

    assert [(response.status_code, response.text) for response in in_flight] == [(200, "drained: held")]
    recorded = cluster.conversation(in_flight[0])  # recorded before the worker ended
    assert recorded["id"] == in_flight[0].headers["fh-conversation-id"]
    assert supervisor.wait(WAIT_S) == 0
    assert not any(alive(status[0]["pid"]) for status in workers.values())
    with pytest.raises(ProcessLookupError):
        os.killpg(supervisor.pid, 0)  # nothing is left in the data plane's process group


def test_a_second_data_plane_on_a_taken_port_exits_naming_it(cluster: Cluster, plane: Plane) -> None:
    second = cluster.data_plane(port=plane.port, workers=WORKERS)
    second.launch()
    assert second.process is not None

    assert second.process.wait(WAIT_S) == 1
    message = log_since_start(second)
    assert f"cannot listen on 127.0.0.1:{plane.port}" in message and "FFAAS_DATA_PLANE_PORT" in message
    assert "worker 0 started" not in message
    status_on_a_fresh_connection(plane)  # the first one still serves


def test_the_port_stays_the_data_planes_while_no_worker_listens(cluster: Cluster) -> None:
    single = cluster.start_data_plane(workers=1)
    worker = single.status()
    supervisor = single.process
    assert supervisor is not None
    os.kill(supervisor.pid, signal.SIGSTOP)  # it cannot start a new worker until SIGCONT
    try:
        os.kill(worker["pid"], signal.SIGKILL)
        wait_until(lambda: not alive(worker["pid"]), "the only worker is gone", single)

        with socket.socket() as intruder:
            intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError) as refused:
                intruder.bind(("127.0.0.1", single.port))
        assert refused.value.errno == errno.EADDRINUSE
    finally:
        os.kill(supervisor.pid, signal.SIGCONT)

    def replaced() -> bool:
        try:
            return bool(status_on_a_fresh_connection(single)["pid"] != worker["pid"])
        except httpx.TransportError:  # refused until the new worker listens
            return False

    wait_until(replaced, "a new worker", single)


def test_workers_that_keep_failing_to_start_stop_the_data_plane(cluster: Cluster) -> None:
    broken = cluster.data_plane(workers=WORKERS, settings={"FFAAS_REDIS_URL": "redis://127.0.0.1:notaport/0"})
    broken.launch()
    assert broken.process is not None

    assert broken.process.wait(WAIT_S * 2) == 1
    log = log_since_start(broken)
    assert re.search(r"worker \d failed 3 times in a row before serving", log), log
    assert "starts again in" in log


def test_a_single_worker_keeps_the_plane_id_as_configured(cluster: Cluster) -> None:
    single = cluster.start_data_plane(workers=1)
    wait_for_workers(single, time.monotonic() + WAIT_S)

    status = single.status()
    assert (status["workers"], status["worker"]) == (1, 0)
    assert status["plane_id"] == single.settings["FFAAS_PLANE_ID"]
