"""A Redis that hangs (SIGSTOP: connections open, nothing answered) hangs no request, on either plane.

Real processes: a cluster on its own redis-server, which is stopped once an endpoint (two
deploys), a processor and a stored run exist. Then every route of both planes is called at
once, each from its own thread with a client timeout far above FFAAS_REDIS_TIMEOUT_MS (a
request that hangs fails there), and must answer: from SQLite where it can, 503 with
`Retry-After` naming the Redis deadline where it needs Redis, the runs as usual (their
records wait in the outbox). Redis is resumed before the planes stop.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from shared.content_hash import content_hash
from shared.replay_auth import replay_authorization
from tests.conftest import RedisServer
from tests.e2e.cluster import Cluster, assert_error
from tests.e2e.conftest import ClusterFactory

REDIS_TIMEOUT_MS = 500
CLIENT_TIMEOUT_S = 60.0
"""Far beyond any deadline: a request still unanswered by then hangs."""
TIMED_OUT = "Redis did not answer in time (FFAAS_REDIS_TIMEOUT_MS)"
PROCESSOR = "async function main(fh, request) { return {code: 200, body: 'ok ' + request.body}; }"


@dataclass(frozen=True)
class Call:
    plane: str
    method: str
    path: str
    expected: int
    json: object = None
    content: bytes | None = None
    headers: dict[str, str] | None = None

    def __str__(self) -> str:
        return f"{self.plane} plane {self.method} {self.path}"


@dataclass(frozen=True)
class Made:
    """What a cluster holds before Redis stops."""

    endpoint_id: str
    other_endpoint_id: str
    first_deploy_id: str
    processor_id: str
    conversation_id: str


@pytest.fixture
def stopped_redis(own_redis: RedisServer) -> Iterator[Callable[[], None]]:
    """`stop()` SIGSTOPs the cluster's redis-server; it is resumed (SIGCONT) after the test."""
    assert own_redis.process is not None
    pid = own_redis.process.pid
    stopped: list[int] = []

    def stop() -> None:
        os.kill(pid, signal.SIGSTOP)
        stopped.append(pid)

    yield stop
    for stopped_pid in stopped:
        os.kill(stopped_pid, signal.SIGCONT)


def make_things(cluster: Cluster, echo_wasm: bytes) -> Made:
    endpoint_id = cluster.new_deployed_endpoint("hanging redis", echo_wasm)
    first_deploy_id = cluster.get_endpoint(endpoint_id).json()["active_deploy_id"]
    cluster.deploy(endpoint_id, echo_wasm)  # a second deploy, so a rollback has somewhere to go
    other_endpoint_id = cluster.new_deployed_endpoint("to delete", echo_wasm)
    processor_id = cluster.create_processor(PROCESSOR, name="hanging redis")["id"]
    run = cluster.call(cluster.data_planes[0], endpoint_id, "/before", method="POST", content=b"before")
    conversation_id = run.headers["fh-conversation-id"]
    assert cluster.http.get(f"{cluster.admin_url}/conversation/{conversation_id}").status_code == 200
    return Made(endpoint_id, other_endpoint_id, first_deploy_id, processor_id, conversation_id)


def test_every_route_of_both_planes_answers_while_redis_hangs(
    own_redis: RedisServer,
    cluster_factory: ClusterFactory,
    echo_wasm: bytes,
    stopped_redis: Callable[[], None],
) -> None:
    cluster = cluster_factory(redis=own_redis, settings={"FFAAS_REDIS_TIMEOUT_MS": str(REDIS_TIMEOUT_MS)})
    made = make_things(cluster, echo_wasm)
    unknown = str(uuid.uuid4())
    processor = {"name": "renamed", "language": "js", "runtime": "v8", "code": PROCESSOR}
    replay = {"deploy_id": made.first_deploy_id}
    never_compiled = {  # what a control plane sends for a deploy this data plane has not compiled
        "replay_of": made.conversation_id,
        "outbound": "recorded",
        "request": {
            "method": "GET",
            "path": "/",
            "query": "",
            "headers": {},
            "body": "",
            "version": "HTTP/1.1",
        },
        "endpoint": {
            "endpoint_id": made.endpoint_id,
            "deploy_id": made.first_deploy_id,
            "module_hash": content_hash(b"a module this data plane never compiled"),
            "env": {},
        },
    }
    calls = [
        # Control plane: SQLite reads answer as ever.
        Call("control", "GET", "/status", 200),
        Call("control", "GET", f"/conversation/{made.conversation_id}", 200),
        Call("control", "GET", "/conversation?limit=5", 200),
        Call("control", "GET", "/endpoint", 200),
        Call("control", "GET", f"/endpoint/{made.endpoint_id}", 200),
        Call("control", "GET", f"/endpoint/{made.endpoint_id}/env", 200),
        Call("control", "GET", "/admin/processor", 200),
        Call("control", "GET", f"/admin/processor/{made.processor_id}", 200),
        Call("control", "GET", "/replay", 200),
        Call("control", "POST", "/endpoint", 201, json={"name": "new"}),
        # What needs Redis: 503 with Retry-After, within the deadline.
        Call("control", "GET", f"/conversation/{unknown}", 503),
        Call("control", "GET", f"/conversation/{unknown}/audit_item", 503),
        Call("control", "POST", f"/endpoint/{made.endpoint_id}/deploy", 503, content=echo_wasm),
        Call("control", "POST", f"/endpoint/{made.endpoint_id}/rollback", 503),
        Call("control", "PUT", f"/endpoint/{made.endpoint_id}/env", 503, json={"A": "b"}),
        Call("control", "DELETE", f"/endpoint/{made.other_endpoint_id}", 503),
        Call("control", "POST", "/admin/processor", 503, json=processor),
        Call("control", "PUT", f"/admin/processor/{made.processor_id}", 503, json=processor),
        Call("control", "POST", f"/conversation/{made.conversation_id}/replay", 503, json=replay),
        # Data plane: runs answer (their records go to the outbox); /status says Redis is unavailable;
        # a replay of a module it must fetch from Redis answers 503.
        Call("data", "GET", "/status", 200),
        Call(
            "data",
            "POST",
            "/replay",
            503,
            json=never_compiled,
            headers=replay_authorization(cluster.admin_token),
        ),
        Call("data", "POST", f"/{made.endpoint_id}/during", 200, content=b"during"),
        Call("data", "POST", f"/processor/{made.processor_id}/run_with_prelude", 200, content=b"x"),
    ]

    def call(one: Call) -> httpx.Response:
        base = cluster.admin_url if one.plane == "control" else cluster.data_planes[0].url
        client = cluster.http if one.headers is not None else cluster.admin
        return client.request(
            one.method,
            base + one.path,
            json=one.json,
            content=one.content,
            headers=one.headers,
            timeout=CLIENT_TIMEOUT_S,
        )

    stopped_redis()
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        answers = {str(one): (one, answer) for one, answer in zip(calls, pool.map(call, calls), strict=True)}

    wrong = {
        name: f"{answer.status_code}, expected {one.expected}: {answer.text[:300]}"
        for name, (one, answer) in answers.items()
        if answer.status_code != one.expected
    }
    assert not wrong, wrong
    for name, (_, answer) in answers.items():
        if answer.status_code == 503:
            assert_error(answer, 503, TIMED_OUT)
            assert answer.headers["retry-after"] == "1", name
    assert answers["control plane GET /status"][1].json()["redis"] == "unavailable"
    assert answers["data plane GET /status"][1].json()["redis"] == "unavailable"
    for name, (one, answer) in answers.items():
        if one.plane == "data" and one.method == "POST" and one.path != "/replay":
            assert "fh-conversation-id" in answer.headers, name
