"""`ffaas conversation list | show | tail` against real planes."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from tests.e2e.cli.conftest import FFAAS, Ffaas
from tests.e2e.cluster import Cluster, TargetServer

DEADLINE_S = 30.0
OUTBOUND = """async function main(fh, request) {
  fh.log("relaying", request.body);
  const answer = await fh.dispatch_request(TARGET + "/hook?status=202", {method: "PUT", body: request.body});
  return {code: 200, body: {target_said: answer.code}};
}"""


def test_list_filters_by_endpoint_processor_outcome_and_limit(
    ffaas: Ffaas, cluster: Cluster, echo_wasm: bytes
) -> None:
    endpoint_id = cluster.new_deployed_endpoint("list-demo", echo_wasm)
    calls = [cluster.call(cluster.data_planes[0], endpoint_id, f"/{n}") for n in range(3)]
    thrower = cluster.create_processor("function main(r) { throw new Error('no'); }", name="list-thrower")
    failed = cluster.run_processor(thrower["id"], prelude=False)
    ids = [call.headers["fh-conversation-id"] for call in calls]

    page = ffaas.ok("conversation", "list", "--endpoint", "list-demo", "--json").json()
    assert [c["id"] for c in page["conversations"]] == ids[::-1]  # newest first
    assert (
        page
        == cluster.admin.get(
            f"{cluster.admin_url}/conversation", params={"endpoint_id": endpoint_id, "limit": 20}
        ).json()
    )
    two = ffaas.ok("conversation", "list", "--endpoint", endpoint_id, "--limit", "2", "--json").json()
    assert [c["id"] for c in two["conversations"]] == ids[:0:-1] and two["next"] is not None
    threw = ffaas.ok(
        "conversation", "list", "--processor", "list-thrower", "--outcome", "threw", "--json"
    ).json()
    assert [c["id"] for c in threw["conversations"]] == [failed.headers["fh-conversation-id"]]
    none = ffaas.ok("conversation", "list", "--endpoint", endpoint_id, "--outcome", "threw", "--json").json()
    assert none["conversations"] == []

    table = ffaas.ok("conversation", "list", "--endpoint", "list-demo").stdout
    for conversation_id in ids:
        assert conversation_id in table
    assert "endpoint list-demo" in table and "completed" in table


def test_show_renders_the_run_as_a_timeline(ffaas: Ffaas, cluster: Cluster) -> None:
    with TargetServer() as target:
        relay = cluster.create_processor(OUTBOUND.replace("TARGET", repr(target.url)), name="show-demo")
        run = cluster.run_processor(relay["id"], method="POST", content=b"payload", plane=_allowing(cluster))
        assert run.status_code == 200, run.text
    conversation_id = run.headers["fh-conversation-id"]

    shown = ffaas.ok("conversation", "show", conversation_id).stdout

    lines = [line.strip() for line in shown.splitlines()]
    assert lines[0] == f"conversation {conversation_id}"
    assert lines[1] == f"processor show-demo {relay['id']}  version {relay['active_version_id']}"
    order = [
        _index(lines, "-> POST /processor/"),
        _index(lines, "log  relaying payload"),
        _index(lines, "-> #1 PUT http://127.0.0.1:"),
        _index(lines, "<- #1 202"),
        _index(lines, "<- 200"),
        _index(lines, "outcome completed   status 200   duration "),
    ]
    assert order == sorted(order), shown
    assert '{"target_said": 202}' in shown
    assert ffaas.ok("conversation", "show", conversation_id, "--json").json() == cluster.conversation(run)


def test_show_of_a_failed_run_gives_the_outcome_and_error(ffaas: Ffaas, cluster: Cluster) -> None:
    thrower = cluster.create_processor(
        "function main(r) { throw new TypeError('bad input'); }", name="show-thrower"
    )
    run = cluster.run_processor(thrower["id"], prelude=False)

    shown = ffaas.ok("conversation", "show", run.headers["fh-conversation-id"]).stdout

    assert "outcome threw   status 500" in shown
    assert "error: the processor failed: TypeError: bad input" in shown


def test_tail_prints_a_run_made_while_it_follows(ffaas: Ffaas, cluster: Cluster, echo_wasm: bytes) -> None:
    endpoint_id = cluster.new_deployed_endpoint("tail-demo", echo_wasm)
    before = cluster.call(cluster.data_planes[0], endpoint_id).headers["fh-conversation-id"]

    with following(ffaas, "conversation", "tail", "--endpoint", "tail-demo") as tail:
        tail.wait_until_following()
        run = cluster.call(cluster.data_planes[0], endpoint_id, "/while-tailing")
        conversation_id = run.headers["fh-conversation-id"]
        line = tail.wait_for(conversation_id)

    assert "endpoint tail-demo" in line and "completed" in line and "200" in line
    assert before not in tail.output(), "a run made before tail started was printed"


def test_tail_by_polling_prints_each_run_once(ffaas: Ffaas, cluster: Cluster, echo_wasm: bytes) -> None:
    endpoint_id = cluster.new_deployed_endpoint("poll-demo", echo_wasm)

    with following(ffaas, "conversation", "tail", "--poll", "--endpoint", endpoint_id, "--json") as tail:
        assert "polled" in tail.wait_until_following()
        first = cluster.call(cluster.data_planes[0], endpoint_id).headers["fh-conversation-id"]
        tail.wait_for(first)
        second = cluster.call(cluster.data_planes[0], endpoint_id).headers["fh-conversation-id"]
        tail.wait_for(second)  # polls went on after the first was shown

    shown = [line for line in tail.output().splitlines() if line.strip()]
    assert [item for item in shown if first in item] == [shown[0]], "the first run was printed more than once"
    assert '"endpoint_id": "' + endpoint_id + '"' in shown[0]


class Following:
    """A running `ffaas ... tail`: its stdout and stderr lines, read as they come."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.seen: list[tuple[str, str]] = []
        assert process.stdout is not None and process.stderr is not None
        for name, stream in (("out", process.stdout), ("err", process.stderr)):
            threading.Thread(target=self._read, args=(name, stream), daemon=True).start()

    def _read(self, name: str, stream: IO[bytes]) -> None:
        for raw in stream:
            self.lines.put((name, raw.decode(errors="replace")))

    def _next_matching(self, predicate: str, stream: str) -> str:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            try:
                name, text = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append((name, text))
            if name == stream and predicate in text:
                return text
        raise AssertionError(f"no {predicate!r} on std{stream} within {DEADLINE_S} s; got {self.seen!r}")

    def wait_until_following(self) -> str:
        return self._next_matching("following", "err")

    def wait_for(self, text: str) -> str:
        return self._next_matching(text, "out")

    def output(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(text for name, text in self.seen if name == "out")


@contextmanager
def following(ffaas: Ffaas, *args: str) -> Iterator[Following]:
    process = subprocess.Popen(
        [str(FFAAS), *args], env=ffaas.environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        yield Following(process)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _index(lines: list[str], start: str) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(start) or start in line)


def _allowing(cluster: Cluster):  # type: ignore[no-untyped-def]
    """A data plane of this cluster that may send requests to 127.0.0.1 (started on first use)."""
    for plane in cluster.data_planes:
        if plane.settings.get("FFAAS_OUTBOUND_ALLOW") == "127.0.0.1":
            return plane
    return cluster.start_data_plane(settings={"FFAAS_OUTBOUND_ALLOW": "127.0.0.1"})
