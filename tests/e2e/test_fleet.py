"""Several data planes on one Redis: every change is served by all of them once its response is back.

The product promise under test: a deploy, rollback, environment change or deletion
answers only after every live data plane serves it, so a call made right after the
response, to any data plane, sees the change. No test here polls for it (only a plane
that was frozen is given time to catch up).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.conftest import RedisServer
from tests.data_plane import guests
from tests.e2e.cluster import Cluster, assert_error
from tests.e2e.conftest import running_cluster
from tests.e2e.processes import Plane


def version(number: int) -> bytes:
    """A module answering `version <number>`; each number is a different module (and hash)."""
    return guests.prints(f"Content-Type: text/plain\n\nversion {number}".encode())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("fleet"), redis_server, data_planes=2) as cluster:
        yield cluster


@pytest.fixture
def late_planes(cluster: Cluster) -> Iterator[list[Plane]]:
    """Data planes a test starts itself; stopped (and forgotten by the cluster) after the test."""
    started: list[Plane] = []
    yield started
    for plane in started:
        plane.stop()
        cluster.data_planes.remove(plane)


def answers(cluster: Cluster, endpoint_id: str) -> list[tuple[int, str]]:
    """(status, body) of one call to the endpoint on each data plane of the cluster."""
    results = []
    for plane in cluster.data_planes:
        response = cluster.call(plane, endpoint_id)
        results.append((response.status_code, response.text))
    return results


def test_both_data_planes_serve_a_deploy_right_after_its_response(cluster: Cluster) -> None:
    assert len(cluster.data_planes) == 2
    endpoint_id = cluster.create_endpoint("fleet")["id"]

    cluster.deploy(endpoint_id, version(1))
    assert answers(cluster, endpoint_id) == [(200, "version 1")] * 2

    cluster.deploy(endpoint_id, version(2))
    assert answers(cluster, endpoint_id) == [(200, "version 2")] * 2


def test_each_data_plane_reports_the_endpoints_it_serves(cluster: Cluster) -> None:
    before = [plane.status() for plane in cluster.data_planes]
    endpoint_id = cluster.create_endpoint("counted")["id"]

    cluster.deploy(endpoint_id, version(3))

    for plane, earlier in zip(cluster.data_planes, before, strict=True):
        status = plane.status()
        assert status["status"] == "ok"
        assert status["service"] == "data-plane"
        assert status["redis"] == "ok"
        assert status["plane_id"] == plane.settings["FFAAS_PLANE_ID"]
        assert status["endpoints"] == earlier["endpoints"] + 1


def test_data_plane_started_after_the_deploy_serves_it(cluster: Cluster, late_planes: list[Plane]) -> None:
    endpoint_id = cluster.create_endpoint("before the plane")["id"]
    cluster.deploy(endpoint_id, version(4))

    late = cluster.data_plane()
    late_planes.append(late)
    late.start()

    response = cluster.call(late, endpoint_id)
    assert (response.status_code, response.text) == (200, "version 4")
    assert late.status()["modules_compiled"] >= 1


def test_data_plane_started_late_then_follows_new_deploys(cluster: Cluster, late_planes: list[Plane]) -> None:
    endpoint_id = cluster.create_endpoint("late follower")["id"]
    cluster.deploy(endpoint_id, version(5))
    late = cluster.data_plane()
    late_planes.append(late)
    late.start()

    cluster.deploy(endpoint_id, version(6))

    assert answers(cluster, endpoint_id) == [(200, "version 6")] * 3


def test_deploy_with_an_unresponsive_data_plane_answers_201_after_the_ack_timeout(
    cluster: Cluster, late_planes: list[Plane]
) -> None:
    """A data plane that got the event but never acknowledges (hung, here frozen with SIGSTOP)
    delays the deploy by at most FFAAS_DEPLOY_ACK_TIMEOUT_MS (default 5000 ms); the deploy still
    succeeds, the live planes serve it, and the hung one catches up once it runs again."""
    endpoint_id = cluster.create_endpoint("one plane hangs")["id"]
    cluster.deploy(endpoint_id, version(61))
    hung = cluster.data_plane()
    late_planes.append(hung)
    hung.start()
    hung.freeze()
    try:
        response = cluster.post_module(endpoint_id, version(62))
    finally:
        hung.thaw()

    assert response.status_code == 201, f"{response.status_code} {response.text}"
    for plane in cluster.data_planes[:2]:
        assert cluster.call(plane, endpoint_id).text == "version 62"
    deadline = time.monotonic() + 10
    while cluster.call(hung, endpoint_id).text != "version 62":
        assert time.monotonic() < deadline, f"the thawed plane never caught up\n{hung.describe_log()}"
        time.sleep(0.05)


def test_rollback_to_the_previous_deploy_reaches_every_data_plane(cluster: Cluster) -> None:
    endpoint_id = cluster.create_endpoint("rollback")["id"]
    deploys = [cluster.deploy(endpoint_id, version(number)) for number in (11, 12, 13)]
    assert answers(cluster, endpoint_id) == [(200, "version 13")] * 2

    response = cluster.admin.post(f"{cluster.admin_url}/endpoint/{endpoint_id}/rollback")

    assert response.status_code == 200, response.text
    endpoint = response.json()
    assert endpoint["active_deploy_id"] == deploys[1]["id"]
    assert endpoint["deploy_history"] == deploys, "a rollback must not change the history"
    assert answers(cluster, endpoint_id) == [(200, "version 12")] * 2

    again = cluster.admin.post(f"{cluster.admin_url}/endpoint/{endpoint_id}/rollback")
    assert again.status_code == 200, again.text
    assert again.json()["active_deploy_id"] == deploys[0]["id"]
    assert answers(cluster, endpoint_id) == [(200, "version 11")] * 2

    oldest = cluster.admin.post(f"{cluster.admin_url}/endpoint/{endpoint_id}/rollback")
    assert_error(oldest, 400, "no earlier deploy")
    assert answers(cluster, endpoint_id) == [(200, "version 11")] * 2


def test_rollback_to_a_named_deploy_reaches_every_data_plane(cluster: Cluster) -> None:
    endpoint_id = cluster.create_endpoint("rollback to")["id"]
    deploys = [cluster.deploy(endpoint_id, version(number)) for number in (21, 22, 23)]
    rollback_url = f"{cluster.admin_url}/endpoint/{endpoint_id}/rollback"

    response = cluster.admin.post(rollback_url, json={"deploy_id": deploys[0]["id"]})

    assert response.status_code == 200, response.text
    assert response.json()["active_deploy_id"] == deploys[0]["id"]
    assert cluster.get_endpoint(endpoint_id).json()["active_deploy_id"] == deploys[0]["id"]
    assert answers(cluster, endpoint_id) == [(200, "version 21")] * 2

    # Forward again to the newest: "rollback" activates any deploy of the history.
    forward = cluster.admin.post(rollback_url, json={"deploy_id": deploys[2]["id"]})
    assert forward.status_code == 200, forward.text
    assert answers(cluster, endpoint_id) == [(200, "version 23")] * 2


def test_rollback_to_an_unknown_deploy_is_404_and_changes_nothing(cluster: Cluster) -> None:
    endpoint_id = cluster.create_endpoint("rollback unknown")["id"]
    deploy = cluster.deploy(endpoint_id, version(31))

    response = cluster.admin.post(
        f"{cluster.admin_url}/endpoint/{endpoint_id}/rollback",
        json={"deploy_id": "00000000-0000-0000-0000-000000000001"},
    )

    assert_error(response, 404, "00000000-0000-0000-0000-000000000001")
    assert cluster.get_endpoint(endpoint_id).json()["active_deploy_id"] == deploy["id"]
    assert answers(cluster, endpoint_id) == [(200, "version 31")] * 2


def test_deleting_an_endpoint_makes_every_data_plane_answer_404(cluster: Cluster) -> None:
    endpoint_id = cluster.create_endpoint("doomed")["id"]
    cluster.deploy(endpoint_id, version(41))
    assert answers(cluster, endpoint_id) == [(200, "version 41")] * 2

    response = cluster.admin.delete(f"{cluster.admin_url}/endpoint/{endpoint_id}")

    assert response.status_code == 204, response.text
    for plane in cluster.data_planes:
        assert_error(cluster.call(plane, endpoint_id), 404, endpoint_id)
        assert_error(cluster.call(plane, endpoint_id, "/sub/path", method="POST"), 404, endpoint_id)
    assert_error(cluster.get_endpoint(endpoint_id), 404, endpoint_id)
    assert_error(cluster.admin.delete(f"{cluster.admin_url}/endpoint/{endpoint_id}"), 404, endpoint_id)


def test_deleting_one_endpoint_leaves_the_others_served(cluster: Cluster) -> None:
    kept = cluster.create_endpoint("kept")["id"]
    doomed = cluster.create_endpoint("doomed too")["id"]
    cluster.deploy(kept, version(51))
    cluster.deploy(doomed, version(52))

    cluster.admin.delete(f"{cluster.admin_url}/endpoint/{doomed}")

    assert answers(cluster, kept) == [(200, "version 51")] * 2
