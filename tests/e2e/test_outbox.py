"""The data plane's conversation outbox, with real processes: a redis-server that is stopped,
restarted, refuses writes or hangs (SIGSTOP), and data planes killed with SIGKILL.

- A run answered while Redis is down has its record fsynced in the outbox on the data
  plane's disk: a data plane killed then (kill -9) writes it once it and Redis are back.
- While a data plane still holds answered runs, `GET /conversation/<id>` says they are on
  their way (503, `Retry-After`, naming the plane) instead of 404; and while the control
  plane cannot reach Redis it answers 503 for an id it does not have.
- A Redis that hangs holds a run for at most FFAAS_RECORD_TIMEOUT_MS: the run answers
  while Redis is still stopped, and its record reaches the stream, in order, once Redis
  runs again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis

from shared.conversations import STREAM_FIELD, ConversationRecord
from shared.keys import Keys
from tests.conftest import RedisServer
from tests.e2e.cluster import Cluster, assert_error
from tests.e2e.conftest import ClusterFactory

WAIT_S = 30.0


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """A wait for background work (the drainer) with a generous deadline; never the assertion."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        time.sleep(0.02)


def run_echo(cluster: Cluster, endpoint_id: str, body: bytes) -> tuple[str, httpx.Response]:
    response = cluster.call(cluster.data_planes[0], endpoint_id, "/outbox", method="POST", content=body)
    assert response.status_code == 200, f"{response.status_code} {response.text}"
    return response.headers["fh-conversation-id"], response


def get_conversation(cluster: Cluster, conversation_id: str) -> httpx.Response:
    return cluster.http.get(f"{cluster.admin_url}/conversation/{conversation_id}")


def readable(cluster: Cluster, conversation_id: str) -> dict[str, Any]:
    """The conversation once the control plane has it (503 "on its way" meanwhile, never 404)."""
    seen: list[int] = []

    def found() -> bool:
        response = get_conversation(cluster, conversation_id)
        seen.append(response.status_code)
        assert response.status_code in (200, 503), f"GET answered {response.status_code}: {response.text}"
        return response.status_code == 200

    wait_until(found, f"conversation {conversation_id} (answers so far: {sorted(set(seen))})")
    conversation: dict[str, Any] = get_conversation(cluster, conversation_id).json()
    return conversation


def assert_recorded(conversation: dict[str, Any], sent: bytes, answer: httpx.Response) -> None:
    request, final = conversation["audit_items"][0], conversation["audit_items"][-1]
    assert request["payload"]["body"] == sent.decode()
    assert (final["payload"]["code"], final["payload"]["body"]) == (answer.status_code, answer.text)


def start_redis_refusing_xadd(server: RedisServer) -> None:
    """Start `server` again (same port, same data) with XADD refused to the default user: Redis
    answers, so the data plane registers the ids it holds, but cannot write them (injected fault)."""
    server.process = subprocess.Popen(
        [
            server.binary,
            "--port",
            str(server.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(server.workdir),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--user",
            "default",
            "on",
            "nopass",
            "~*",
            "&*",
            "+@all",
            "-xadd",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis.from_url(server.url)
    wait_until(lambda: _pings(client), "the restarted redis-server to answer")
    client.close()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def stream_ids(server: RedisServer, keys: Keys) -> list[str]:
    client = redis.Redis.from_url(server.url)
    try:
        entries = client.xrange(keys.conversations)
    finally:
        client.close()
    return [ConversationRecord.unpack(fields[STREAM_FIELD]).id for _, fields in entries]


def test_runs_answered_while_redis_is_down_survive_a_killed_data_plane(
    own_redis: RedisServer, cluster_factory: ClusterFactory, echo_wasm: bytes
) -> None:
    cluster = cluster_factory(redis=own_redis)
    endpoint_id = cluster.new_deployed_endpoint("outbox", echo_wasm)
    plane = cluster.data_planes[0]

    own_redis.stop()
    answered = {}
    for number in range(20):
        sent = f"run {number} {uuid.uuid4()}".encode()
        conversation_id, response = run_echo(cluster, endpoint_id, sent)
        answered[conversation_id] = (sent, response)
    status = plane.status()
    assert (status["conversation_outbox"], status["conversation_outbox_dropped"]) == (20, 0), status
    assert status["conversation_outbox_bytes"] > 20 * 200, status

    plane.kill()  # SIGKILL: no shutdown code runs; only the outbox on disk remembers the runs
    outbox_dir = Path(plane.settings["FFAAS_DATA_DIR"]) / "outbox" / "e2e-data-plane-1"
    segments = sorted(outbox_dir.glob("*.seg"))
    assert segments, f"no outbox segment in {outbox_dir}"
    with segments[-1].open("ab") as torn:  # as if the kill came in the middle of a write
        torn.write(b"\x00\x00\x10\x00\x12\x34half a record")
    own_redis.start()
    plane.start()

    for conversation_id, (sent, response) in answered.items():
        assert_recorded(readable(cluster, conversation_id), sent, response)
    wait_until(lambda: plane.status()["conversation_outbox"] == 0, "the outbox to drain")
    wait_until(lambda: not list(outbox_dir.glob("*.seg")), "the drained segments to be deleted")
    assert "is torn or corrupt" in plane.log_path.read_text()


def test_a_run_held_in_the_outbox_is_on_its_way_not_404(
    own_redis: RedisServer, cluster_factory: ClusterFactory, echo_wasm: bytes
) -> None:
    cluster = cluster_factory(redis=own_redis)
    endpoint_id = cluster.new_deployed_endpoint("on its way", echo_wasm)
    keys = Keys(cluster.prefix)

    own_redis.stop()
    conversation_id, response = run_echo(cluster, endpoint_id, b"during the outage")
    for unknown in (conversation_id, str(uuid.uuid4())):
        unreachable = get_conversation(cluster, unknown)
        assert_error(unreachable, 503, f"conversation {unknown} is not stored yet", "Redis unavailable")
        assert unreachable.headers["retry-after"] == "1"

    start_redis_refusing_xadd(own_redis)
    client = redis.Redis.from_url(own_redis.url)
    try:
        wait_until(lambda: client.exists(keys.held_conversation(conversation_id)) == 1, "the held id")
        assert client.get(keys.held_conversation(conversation_id)) == b"e2e-data-plane-1"
        assert 0 < client.ttl(keys.held_conversation(conversation_id)) <= 900

        on_its_way = get_conversation(cluster, conversation_id)
        assert_error(on_its_way, 503, f"conversation {conversation_id} is on its way", "e2e-data-plane-1")
        assert on_its_way.headers["retry-after"] == "1"
        items = cluster.http.get(f"{cluster.admin_url}/conversation/{conversation_id}/audit_item")
        assert_error(items, 503, "is on its way")
        assert_error(get_conversation(cluster, str(uuid.uuid4())), 404, "not found")

        # A run answered now, while the outbox still holds records and Redis answers, is registered
        # before it answers: its conversation is on its way at once.
        later_id, later = run_echo(cluster, endpoint_id, b"while draining")
        assert_error(get_conversation(cluster, later_id), 503, f"conversation {later_id} is on its way")

        client.execute_command("ACL", "SETUSER", "default", "+xadd")
        assert_recorded(readable(cluster, conversation_id), b"during the outage", response)
        assert_recorded(readable(cluster, later_id), b"while draining", later)
        wait_until(lambda: not client.keys(f"{cluster.prefix}:held:*"), "the held ids to be deleted")
    finally:
        client.close()


def test_a_hanging_redis_holds_a_run_only_until_the_record_deadline(
    own_redis: RedisServer, cluster_factory: ClusterFactory, echo_wasm: bytes
) -> None:
    cluster = cluster_factory(redis=own_redis, settings={"FFAAS_RECORD_TIMEOUT_MS": "250"})
    endpoint_id = cluster.new_deployed_endpoint("hanging redis", echo_wasm)
    assert own_redis.process is not None
    redis_pid = own_redis.process.pid

    os.kill(redis_pid, signal.SIGSTOP)  # Redis hangs: connections open, nothing answered
    try:
        first_id, first = run_echo(cluster, endpoint_id, b"first")
        second_id, second = run_echo(cluster, endpoint_id, b"second")
        # Both answered while Redis is still stopped (it is resumed only below): their records are
        # in the outbox.
        status = cluster.data_planes[0].status()
        assert (status["redis"], status["conversation_outbox"]) == ("unavailable", 2), status
    finally:
        os.kill(redis_pid, signal.SIGCONT)

    keys = Keys(cluster.prefix)
    wait_until(
        lambda: {first_id, second_id} <= set(stream_ids(own_redis, keys)), "both records on the stream"
    )
    order = stream_ids(own_redis, keys)
    assert order.index(first_id) < order.index(second_id), "records reach the stream in the order runs ended"
    assert_recorded(readable(cluster, first_id), b"first", first)
    assert_recorded(readable(cluster, second_id), b"second", second)
