"""Processes going away and coming back: a data plane restarted, Redis restarted under running planes.

Each test builds its own cluster, since it stops part of it.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.conftest import RedisServer
from tests.data_plane import guests
from tests.e2e.cluster import Cluster
from tests.e2e.conftest import ClusterFactory
from tests.e2e.processes import Plane

RECONNECT_TIMEOUT_S = 20.0


def version(number: int) -> bytes:
    return guests.prints(f"Content-Type: text/plain\n\nversion {number}".encode())


def assert_answers(cluster: Cluster, plane: Plane, endpoint_id: str, text: str) -> None:
    response = cluster.call(plane, endpoint_id)
    assert (response.status_code, response.text) == (200, text), plane.describe_log()


def test_restarted_data_plane_serves_from_its_disk_cache_without_compiling(
    cluster_factory: ClusterFactory, hello_wasm: bytes, echo_wasm: bytes
) -> None:
    cluster = cluster_factory()
    plane = cluster.data_planes[0]
    hello_id = cluster.new_deployed_endpoint("hello", hello_wasm)
    echo_id = cluster.new_deployed_endpoint("echo", echo_wasm)
    assert cluster.call(plane, hello_id).text == "Hello, world!\n"
    before = plane.status()
    assert before["modules_compiled"] == 2, before
    assert before["modules_loaded_from_disk"] == 0, before

    plane.restart()

    after = plane.status()
    assert after["modules_compiled"] == 0, after
    assert after["modules_loaded_from_disk"] >= 2, after
    assert after["endpoints"] == 2, after
    # The very first calls after the restart are served.
    assert_answers(cluster, plane, hello_id, "Hello, world!\n")
    echoed = cluster.call(plane, echo_id, "/after/restart", method="POST", content=b"still here")
    assert echoed.status_code == 200, echoed.text
    assert echoed.json()["body"] == "still here"
    assert plane.status()["modules_compiled"] == 0


def test_data_plane_sharing_a_disk_cache_loads_instead_of_compiling(
    cluster_factory: ClusterFactory, hello_wasm: bytes
) -> None:
    cluster = cluster_factory()
    first = cluster.data_planes[0]
    hello_id = cluster.new_deployed_endpoint("hello", hello_wasm)

    second = cluster.start_data_plane(data_dir=Path(first.settings["FFAAS_DATA_DIR"]))

    status = second.status()
    assert status["modules_compiled"] == 0, status
    assert status["modules_loaded_from_disk"] == 1, status
    assert_answers(cluster, second, hello_id, "Hello, world!\n")


def test_data_plane_reconnects_after_redis_restarts_and_serves_new_deploys(
    own_redis: RedisServer, cluster_factory: ClusterFactory
) -> None:
    cluster = cluster_factory(data_planes=2, redis=own_redis)
    endpoint_id = cluster.new_deployed_endpoint("survivor", version(1))
    for plane in cluster.data_planes:
        assert_answers(cluster, plane, endpoint_id, "version 1")

    own_redis.stop()
    own_redis.start()

    # A deploy made after the restart (retried while the control plane answers 503: that the
    # first attempt must already succeed is the next test's business); a data plane still
    # resubscribing catches up from Redis.
    deploy_until_published(cluster, endpoint_id, version(2))
    for plane in cluster.data_planes:
        wait_until_answers(cluster, plane, endpoint_id, "version 2")
        assert plane.status()["redis"] == "ok"
    # Once reconnected, the acknowledged path works again: served right after the response.
    cluster.deploy(endpoint_id, version(3))
    for plane in cluster.data_planes:
        assert_answers(cluster, plane, endpoint_id, "version 3")
    second = cluster.new_deployed_endpoint("after the restart", version(4))
    for plane in cluster.data_planes:
        assert_answers(cluster, plane, second, "version 4")


def test_first_deploy_after_a_redis_restart_is_published(
    own_redis: RedisServer, cluster_factory: ClusterFactory
) -> None:
    cluster = cluster_factory(redis=own_redis)
    plane = cluster.data_planes[0]
    endpoint_id = cluster.new_deployed_endpoint("first after restart", version(1))

    own_redis.stop()
    own_redis.start()
    wait_until_answers(cluster, plane, endpoint_id, "version 1")  # the data plane is back
    response = cluster.post_module(endpoint_id, version(2))

    # Redis is up again: the control plane must reconnect rather than answer 503 from a dead
    # pooled connection, which leaves the deploy active in SQLite but never published.
    assert response.status_code == 201, f"{response.status_code} {response.text}"
    assert cluster.get_endpoint(endpoint_id).json()["active_deploy_id"] == response.json()["id"]
    assert_answers(cluster, plane, endpoint_id, "version 2")


def test_data_plane_rereads_its_routes_after_redis_is_killed_and_restarted(
    own_redis: RedisServer, cluster_factory: ClusterFactory
) -> None:
    """SIGKILL, unlike SIGTERM, lets redis-py reconnect within its retries without raising: the
    data plane must still notice, log it, and re-read every route it may have missed."""
    cluster = cluster_factory(redis=own_redis, settings={"FFAAS_DEPLOY_ACK_TIMEOUT_MS": "300"})
    plane = cluster.data_planes[0]
    endpoint_id = cluster.new_deployed_endpoint("survivor", version(1))
    assert_answers(cluster, plane, endpoint_id, "version 1")

    plane.freeze()  # it keeps its connections, and cannot reconnect before the change below
    kill(own_redis)
    own_redis.start()  # same port; appendonly, so the routes come back
    deploy_until_published(cluster, endpoint_id, version(2))  # its event reaches no data plane
    plane.thaw()

    wait_until_answers(cluster, plane, endpoint_id, "version 2")
    assert "the connection to Redis was re-established; re-reading every route" in plane.log_tail(200)
    assert plane.status()["route_sync"] == "ok"


def kill(redis: RedisServer) -> None:
    """SIGKILL redis-server: no shutdown, the kernel closes its sockets."""
    assert redis.process is not None
    redis.process.kill()
    redis.process.wait()
    redis.process = None


def deploy_until_published(cluster: Cluster, endpoint_id: str, wasm: bytes) -> None:
    deadline = time.monotonic() + RECONNECT_TIMEOUT_S
    while True:
        response = cluster.post_module(endpoint_id, wasm)
        if response.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert response.status_code == 201, f"{response.status_code} {response.text}"
    assert cluster.get_endpoint(endpoint_id).json()["active_deploy_id"] == response.json()["id"]


def wait_until_answers(cluster: Cluster, plane: Plane, endpoint_id: str, text: str) -> None:
    deadline = time.monotonic() + RECONNECT_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        try:
            response = cluster.call(plane, endpoint_id)
            if (response.status_code, response.text) == (200, text):
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.TransportError as exc:
            last = repr(exc)
        time.sleep(0.05)
    raise AssertionError(
        f"{plane!r} did not serve {text!r} within {RECONNECT_TIMEOUT_S}s of the Redis restart "
        f"(last answer: {last})\n{plane.describe_log()}"
    )
