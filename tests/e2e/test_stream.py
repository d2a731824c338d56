"""GET /conversation/stream end to end: real planes, a real HTTP client reading Server-Sent Events.

The module's cluster sends heartbeats every 300 ms (FFAAS_STREAM_HEARTBEAT_MS) and allows three
streams at once (FFAAS_STREAM_MAX_CLIENTS); every test closes the streams it opens.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import RedisServer, free_port
from tests.e2e.cluster import Cluster, assert_error
from tests.e2e.conftest import ClusterFactory, running_cluster
from tests.e2e.processes import Plane

HEARTBEAT_MS = 300
MAX_CLIENTS = 3
READ_TIMEOUT_S = 15.0
OK = 'function main(request) { return "ok"; }'
THROWS = 'function main(request) { throw new Error("nope"); }'


@dataclass(frozen=True)
class Event:
    event: str
    id: str
    data: dict[str, Any]


class Stream:
    """One open `text/event-stream` response, read event by event (comments are counted)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()
        self.comments: list[str] = []

    def next_event(self) -> Event:
        fields: dict[str, str] = {}
        for line in self._lines:
            if line.startswith(":"):
                self.comments.append(line)
            elif line:
                name, _, value = line.partition(":")
                fields[name] = fields.get(name, "") + value.removeprefix(" ")
            elif "data" in fields:
                return Event(fields.get("event", "message"), fields.get("id", ""), json.loads(fields["data"]))
        raise AssertionError("the stream ended")

    def events(self, count: int) -> list[Event]:
        return [self.next_event() for _ in range(count)]

    def next_comment(self) -> str:
        seen = len(self.comments)
        for line in self._lines:
            if line.startswith(":"):
                self.comments.append(line)
            if len(self.comments) > seen:
                return self.comments[-1]
        raise AssertionError("the stream ended")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    settings = {"FFAAS_STREAM_HEARTBEAT_MS": str(HEARTBEAT_MS), "FFAAS_STREAM_MAX_CLIENTS": str(MAX_CLIENTS)}
    with running_cluster(tmp_path_factory.mktemp("stream"), redis_server, settings=settings) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster: Cluster) -> Iterator[httpx.Client]:
    timeout = httpx.Timeout(10.0, read=READ_TIMEOUT_S)
    with httpx.Client(timeout=timeout, headers={"authorization": f"Bearer {cluster.admin_token}"}) as opened:
        yield opened


class Opener:
    def __init__(self, client: httpx.Client, base_url: str) -> None:
        self.client = client
        self.base_url = base_url
        self.opened: list[Any] = []

    def __call__(self, params: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> Stream:
        context = self.client.stream(
            "GET", f"{self.base_url}/conversation/stream", params=params, headers=headers
        )
        response = context.__enter__()
        self.opened.append(context)
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return Stream(response)

    def close_all(self) -> None:
        while self.opened:
            self.opened.pop().__exit__(None, None, None)


@pytest.fixture
def open_stream(client: httpx.Client, cluster: Cluster) -> Iterator[Opener]:
    opener = Opener(client, cluster.admin_url)
    yield opener
    opener.close_all()


def run(cluster: Cluster, processor_id: str) -> str:
    response = cluster.run_processor(processor_id, prelude=False, method="POST", content=b"x")
    conversation_id: str = response.headers["fh-conversation-id"]
    return conversation_id


def test_each_stored_run_is_one_event_exactly_as_the_list_shows_it(
    cluster: Cluster, open_stream: Opener
) -> None:
    processor = cluster.create_processor(OK, name="listed")
    stream = open_stream({"processor_id": processor["id"]})
    made = [run(cluster, processor["id"]) for _ in range(3)]

    events = stream.events(3)

    listed = cluster.admin.get(f"{cluster.admin_url}/conversation", params={"processor_id": processor["id"]})
    assert [event.event for event in events] == ["conversation"] * 3
    assert [event.data for event in events] == listed.json()["conversations"][::-1]
    assert [event.data["id"] for event in events] == made
    ids = [int(event.id) for event in events]
    assert ids == sorted(ids) and len(set(ids)) == 3
    # The ids are the list's cursors: paging from the newest one's id gives the older two.
    page = cluster.admin.get(
        f"{cluster.admin_url}/conversation",
        params={"processor_id": processor["id"], "before": events[2].id},
    ).json()
    assert [c["id"] for c in page["conversations"]] == made[1::-1]


def test_resuming_with_last_event_id_loses_and_repeats_nothing(cluster: Cluster, open_stream: Opener) -> None:
    processor = cluster.create_processor(OK, name="resumed")
    only = {"processor_id": processor["id"]}
    stream = open_stream(only)
    before = [run(cluster, processor["id"]) for _ in range(2)]
    seen = stream.events(2)
    open_stream.close_all()  # the client goes away...

    missed = [run(cluster, processor["id"]) for _ in range(3)]  # ...runs happen meanwhile...

    # ...and it reconnects as EventSource does: same URL (here with a stale ?after=0), Last-Event-ID.
    resumed = open_stream({**only, "after": "0"}, headers={"last-event-id": seen[-1].id})
    replayed = resumed.events(3)
    live = run(cluster, processor["id"])
    following = resumed.next_event()

    assert [e.data["id"] for e in seen] == before
    assert [e.data["id"] for e in replayed] == missed
    assert following.data["id"] == live
    # ?after=<cursor> resumes the same way.
    again = open_stream({**only, "after": seen[-1].id})
    assert [e.data["id"] for e in again.events(4)] == [*missed, live]


def test_filters_hold(cluster: Cluster, open_stream: Opener) -> None:
    ok = cluster.create_processor(OK, name="fine")
    failing = cluster.create_processor(THROWS, name="failing")
    by_processor = open_stream({"processor_id": ok["id"]})
    failures = open_stream({"outcome": "threw"})
    both = open_stream({"processor_id": failing["id"], "outcome": "completed"})

    made = [run(cluster, ok["id"]), run(cluster, failing["id"]), run(cluster, ok["id"])]
    made.append(run(cluster, failing["id"]))

    assert [e.data["id"] for e in by_processor.events(2)] == [made[0], made[2]]
    thrown = failures.events(2)
    assert [e.data["id"] for e in thrown] == [made[1], made[3]]
    assert {e.data["outcome"] for e in thrown} == {"threw"}
    open_stream.close_all()
    # Nothing matched the combined filter: its stream had sent heartbeats only.
    assert both.comments == [] or all(comment.startswith(": ping") for comment in both.comments)
    listed = cluster.admin.get(
        f"{cluster.admin_url}/conversation", params={"processor_id": failing["id"], "outcome": "completed"}
    )
    assert listed.json()["conversations"] == []


def test_an_endpoint_filter_holds(cluster: Cluster, open_stream: Opener, hello_wasm: bytes) -> None:
    first = cluster.new_deployed_endpoint("first", hello_wasm)
    second = cluster.new_deployed_endpoint("second", hello_wasm)
    stream = open_stream({"endpoint_id": second})
    plane = cluster.data_planes[0]
    calls = [cluster.call(plane, endpoint_id) for endpoint_id in (first, second, first, second)]

    events = stream.events(2)

    assert [e.data["id"] for e in events] == [
        calls[1].headers["fh-conversation-id"],
        calls[3].headers["fh-conversation-id"],
    ]
    assert {e.data["endpoint_id"] for e in events} == {second}


def test_heartbeats_keep_an_idle_stream_open(open_stream: Opener) -> None:
    stream = open_stream({"processor_id": "no-such-processor"})
    assert stream.next_comment().startswith(": ping")
    assert stream.next_comment().startswith(": ping")


def test_the_stream_needs_the_admin_token(cluster: Cluster) -> None:
    url = f"{cluster.admin_url}/conversation/stream"
    assert_error(cluster.http.get(url), 401, "missing Authorization header")
    assert_error(cluster.http.get(url, headers={"authorization": "Bearer wrong"}), 401, "wrong admin token")
    assert_error(cluster.http.get(url + "/"), 401, "missing Authorization header")


def test_bad_cursors_and_parameters_are_400(cluster: Cluster) -> None:
    url = f"{cluster.admin_url}/conversation/stream"
    assert_error(
        cluster.admin.get(url, params={"after": "yesterday"}), 400, "after must be a conversation cursor"
    )
    assert_error(
        cluster.admin.get(url, headers={"last-event-id": "x1"}),
        400,
        "Last-Event-ID must be the id of an event",
    )
    assert_error(cluster.admin.get(url, params={"before": "3"}), 400, "unknown query parameter 'before'")
    # Found by schemathesis: beside a Last-Event-ID, a malformed `after` went unchecked.
    assert_error(
        cluster.admin.get(url, params={"after": "yesterday"}, headers={"last-event-id": "1"}),
        400,
        "after must be a conversation cursor",
    )


def test_streams_are_bounded_and_counted(cluster: Cluster, open_stream: Opener) -> None:
    streams = [open_stream() for _ in range(MAX_CLIENTS)]
    for stream in streams:
        stream.next_comment()  # connected and being served
    assert cluster.control_plane is not None
    status = cluster.control_plane.status()
    assert status["stream_clients"] == MAX_CLIENTS, status
    refused = cluster.admin.get(f"{cluster.admin_url}/conversation/stream")
    assert_error(refused, 503, f"{MAX_CLIENTS} are connected (FFAAS_STREAM_MAX_CLIENTS)")
    assert refused.headers["retry-after"] == "5"


def test_a_second_control_plane_streams_what_either_one_stored(
    cluster: Cluster, client: httpx.Client
) -> None:
    """Two control planes share the database and the consumer group: each stores some runs, and a
    stream on either one sees every run once."""
    assert cluster.control_plane is not None
    port = free_port()
    second = Plane(
        "control_plane",
        port=port,
        settings={**cluster.control_plane.settings, "FFAAS_CONTROL_PLANE_PORT": str(port)},
        log_path=cluster.workdir / "logs" / "control-plane-2.log",
    )
    second.start()
    try:
        processor = cluster.create_processor(OK, name="shared")
        opener = Opener(client, second.url)
        try:
            stream = opener({"processor_id": processor["id"]})
            made = [run(cluster, processor["id"]) for _ in range(10)]
            # Two consumers store in parallel: storage order need not be run order, but every run
            # comes exactly once.
            streamed = [e.data["id"] for e in stream.events(10)]
            assert sorted(streamed) == sorted(made)
        finally:
            opener.close_all()
    finally:
        second.stop()


def test_a_run_this_control_plane_stores_is_streamed_without_waiting_for_the_poll(
    cluster_factory: ClusterFactory,
) -> None:
    """With a poll (and heartbeats) of ten minutes, only the ingester's nudge brings the events in time."""
    slow_poll = cluster_factory(
        settings={"FFAAS_STREAM_POLL_MS": "600000", "FFAAS_STREAM_HEARTBEAT_MS": "600000"}
    )
    processor = slow_poll.create_processor(OK, name="nudged")
    timeout = httpx.Timeout(10.0, read=READ_TIMEOUT_S)
    headers = {"authorization": f"Bearer {slow_poll.admin_token}"}
    with httpx.Client(timeout=timeout, headers=headers) as client:
        opener = Opener(client, slow_poll.admin_url)
        try:
            stream = opener({"processor_id": processor["id"]})
            made = [run(slow_poll, processor["id"]) for _ in range(3)]
            assert [e.data["id"] for e in stream.events(3)] == made
        finally:
            opener.close_all()
