"""Nothing lost: every run that answered has its whole conversation, whatever went down meanwhile.

Real processes only: a redis-server (appendonly, fsync always), the control plane and a
data plane as subprocesses, the C echo example as the endpoint. A client calls the
endpoint and keeps, for every run that answered, its `FH-Conversation-Id` and the status
it saw; afterwards each of those runs must have exactly its conversation:
[request, log, response] (echo writes one stderr line), the response answering the
request item, with the status the client saw. What is checked and what was counted is
in every assertion message.

- Redis stopped and started again while runs go on (the data plane's outbox).
- The control plane stopped under load, then started: its background ingest stores the
  backlog (read straight from the SQLite file, so no GET `catch_up` helps).
- The control plane SIGKILLed in the middle of ingesting runs, at a known point (entries
  read from the stream, held back from SQLite by the test's write lock, so neither stored
  nor acknowledged), then started with a short claim idle time: the killed consumer's
  pending entries are taken over, and every conversation is stored exactly once.
"""

from __future__ import annotations

import itertools
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from shared.keys import Keys
from tests.conftest import RedisServer
from tests.e2e.cluster import Cluster
from tests.e2e.conftest import ClusterFactory
from tests.e2e.ingest_faults import kill_holding_a_batch

STATUSES = (200, 201, 404, 418)
"""Echo answers `?status=<code>`; cycling through several makes the recorded status mean something."""
ITEM_KINDS = ["request", "log", "response"]
"""What one echo run records: its request, the one line it writes to stderr, its response."""
WAIT_S = 20.0


@dataclass(frozen=True)
class Run:
    """One call that answered: what the client saw, and when (time.monotonic())."""

    number: int
    conversation_id: str
    status: int
    started: float
    ended: float


@dataclass
class RunLoad:
    """Client threads calling the echo endpoint at `url` until `stop()` or until call number `limit`.

    Call number n asks for `STATUSES[n % 4]` at the sub-path `/run/<n>`; every answer is kept in
    `runs`, every call that got no answer in `failures`.
    """

    url: str
    threads: int = 1
    limit: int | None = None
    first: int = 0
    """The first call's number (so two loads one after the other make distinct runs)."""
    runs: list[Run] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _numbers: Iterator[int] = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._numbers = itertools.count(self.first)

    def start(self) -> None:
        for index in range(self.threads):
            worker = threading.Thread(target=self._work, name=f"run-load-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stop.set()
        self.join()

    def join(self) -> None:
        for worker in self._workers:
            worker.join(timeout=30)
        assert not any(worker.is_alive() for worker in self._workers), "a client thread is stuck"

    def between(self, start: float, end: float) -> list[Run]:
        """The runs made entirely inside [start, end]."""
        return [run for run in self.runs if run.started >= start and run.ended <= end]

    def _work(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while not self._stop.is_set():
                number = next(self._numbers)  # one counter shared by the threads
                if self.limit is not None and number >= self.limit:
                    return
                started = time.monotonic()
                try:
                    response = client.get(f"{self.url}/run/{number}", params={"status": status_of(number)})
                except httpx.HTTPError as exc:
                    self.failures.append(f"run {number}: {exc!r}")
                    time.sleep(0.01)
                    continue
                conversation_id = response.headers.get("fh-conversation-id")
                if conversation_id is None:
                    self.failures.append(f"run {number}: no FH-Conversation-Id, {response.status_code}")
                    continue
                self.runs.append(
                    Run(number, conversation_id, response.status_code, started, time.monotonic())
                )


def status_of(number: int) -> int:
    return STATUSES[number % len(STATUSES)]


def wait_until(condition: Callable[[], bool], what: Callable[[], str], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what()}"
        time.sleep(0.01)


# -- checking conversations ------------------------------------------------------------------------


def conversation_problem(conversation: dict[str, Any], run: Run, endpoint_id: str) -> str | None:
    """What is wrong with the conversation `GET /conversation/<id>` returned for `run`, or None."""
    items = conversation["audit_items"]
    kinds = [item["kind"] for item in items]
    if conversation["id"] != run.conversation_id or kinds != ITEM_KINDS:
        return f"id {conversation['id']}, items {kinds}, expected {ITEM_KINDS}"
    request, response = items[0], items[-1]
    expected_query = f"status={status_of(run.number)}"
    if request["payload"]["path"] != f"/{endpoint_id}/run/{run.number}" or request.get("inc") != 0:
        return f"request item {request}"
    if request["payload"]["query"] != expected_query:
        return f"request query {request['payload']['query']!r}, expected {expected_query!r}"
    if response.get("request") != request["id"]:
        return f"response item answers {response.get('request')!r}, not the request item {request['id']!r}"
    if response["payload"]["code"] != run.status:
        return f"response item code {response['payload']['code']}, the client saw {run.status}"
    if any(item["conversation_id"] != run.conversation_id for item in items):
        return "an item names another conversation"
    if len({item["id"] for item in items}) != len(items):
        return "duplicate item ids"
    return None


def missing_conversations(
    admin_url: str, runs: list[Run], endpoint_id: str, threads: int = 4
) -> dict[int, str]:
    """GET every run's conversation (in `threads` parallel clients); run number -> what is wrong."""

    def check(chunk: list[Run]) -> dict[int, str]:
        problems = {}
        with httpx.Client(timeout=30.0) as client:
            for run in chunk:
                response = client.get(f"{admin_url}/conversation/{run.conversation_id}")
                if response.status_code != 200:
                    problems[run.number] = f"GET {response.status_code} {response.text[:200]}"
                elif (problem := conversation_problem(response.json(), run, endpoint_id)) is not None:
                    problems[run.number] = f"{run.conversation_id}: {problem}"
        return problems

    with ThreadPoolExecutor(threads) as pool:
        chunks = [runs[index::threads] for index in range(threads)]
        return {
            number: problem for problems in pool.map(check, chunks) for number, problem in problems.items()
        }


def describe(problems: dict[int, str], shown: int = 5) -> str:
    return "; ".join(f"run {number}: {problem}" for number, problem in sorted(problems.items())[:shown])


# -- reading the control plane's SQLite file ---------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """What the control plane's SQLite file holds for one endpoint."""

    statuses: dict[str, int]
    """Conversation id -> recorded status."""
    items: dict[str, list[tuple[int, str]]]
    """Conversation id -> its items as (position, kind), in position order."""
    item_rows: int
    distinct_item_ids: int


def stored_count(database: Path, endpoint_id: str) -> int:
    with _connect(database) as connection:
        row = connection.execute(
            "SELECT COUNT(*) FROM conversations WHERE endpoint_id = ?", (endpoint_id,)
        ).fetchone()
    return int(row[0])


def read_stored(database: Path, endpoint_id: str) -> Stored:
    with _connect(database) as connection:
        statuses = dict(
            connection.execute("SELECT id, status FROM conversations WHERE endpoint_id = ?", (endpoint_id,))
        )
        rows = connection.execute(
            "SELECT a.conversation_id, a.position, a.kind, a.id FROM audit_items a "
            "JOIN conversations c ON c.id = a.conversation_id WHERE c.endpoint_id = ? "
            "ORDER BY a.conversation_id, a.position",
            (endpoint_id,),
        ).fetchall()
    items: dict[str, list[tuple[int, str]]] = {}
    for conversation_id, position, kind, _ in rows:
        items.setdefault(conversation_id, []).append((position, kind))
    return Stored(statuses, items, len(rows), len({row[3] for row in rows}))


def _connect(database: Path) -> sqlite3.Connection:
    # Only SELECTs; the busy timeout covers the control plane's checkpoints.
    connection = sqlite3.connect(database, timeout=5.0)
    connection.execute("PRAGMA busy_timeout=5000")
    return connection


def stored_problems(stored: Stored, runs: list[Run]) -> list[str]:
    """Differences between what the client saw and what the SQLite file holds."""
    expected = {run.conversation_id: run for run in runs}
    problems = []
    missing = expected.keys() - stored.statuses.keys()
    unexpected = stored.statuses.keys() - expected.keys()
    if missing:
        problems.append(f"{len(missing)} conversations missing, e.g. {sorted(missing)[:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} conversations no client run made, e.g. {sorted(unexpected)[:3]}")
    wrong_status = [
        cid for cid, run in expected.items() if stored.statuses.get(cid, run.status) != run.status
    ]
    if wrong_status:
        problems.append(f"{len(wrong_status)} conversations with another status than the client saw")
    shape = [(position, kind) for position, kind in enumerate(ITEM_KINDS)]
    wrong_items = [cid for cid in expected.keys() & stored.statuses.keys() if stored.items.get(cid) != shape]
    if wrong_items:
        example = wrong_items[0]
        problems.append(
            f"{len(wrong_items)} conversations without exactly {ITEM_KINDS}, e.g. {example}: "
            f"{stored.items.get(example)}"
        )
    if stored.item_rows != stored.distinct_item_ids:
        problems.append(f"{stored.item_rows} item rows but {stored.distinct_item_ids} distinct item ids")
    return problems


def pending_entries(cluster: Cluster) -> int:
    """Entries of the conversation stream delivered to a consumer and not acknowledged yet."""
    keys = Keys(cluster.prefix)
    client = redis.Redis.from_url(cluster.redis.url)
    try:
        return int(client.xpending(keys.conversations, keys.ingest_group)["pending"])
    finally:
        client.close()


def echo_endpoint(cluster: Cluster, echo_wasm: bytes) -> tuple[str, str]:
    """A deployed echo endpoint: (its id, its URL on the data plane)."""
    endpoint_id = cluster.new_deployed_endpoint("nothing lost", echo_wasm)
    return endpoint_id, f"{cluster.data_planes[0].url}/{endpoint_id}"


# -- the tests ---------------------------------------------------------------------------------------


def test_runs_while_redis_restarts_all_have_their_conversation(
    own_redis: RedisServer, cluster_factory: ClusterFactory, echo_wasm: bytes
) -> None:
    cluster = cluster_factory(redis=own_redis)
    endpoint_id, url = echo_endpoint(cluster, echo_wasm)
    data_plane = cluster.data_planes[0]
    load = RunLoad(url)
    load.start()
    try:
        wait_until(lambda: len(load.runs) >= 100, lambda: f"100 runs before the outage ({len(load.runs)})")
        own_redis.stop()
        down_at = time.monotonic()
        wait_until(
            lambda: len(load.between(down_at, time.monotonic())) >= 100,
            lambda: f"100 runs answered while Redis is down ({len(load.between(down_at, time.monotonic()))})",
        )
        up_at = time.monotonic()
        own_redis.start()
        after = len(load.runs)
        wait_until(lambda: len(load.runs) >= after + 100, lambda: f"100 runs after the outage ({after})")
    finally:
        load.stop()

    during = load.between(down_at, up_at)
    before = [run for run in load.runs if run.ended < down_at]
    counts = (
        f"{len(load.runs)} runs answered ({len(before)} before the outage, {len(during)} during it), "
        f"{len(load.failures)} calls got no answer"
    )
    assert not load.failures, f"{counts}; e.g. {load.failures[:3]}"
    assert during, f"no run was served while Redis was down: {counts}"
    wait_until(
        lambda: data_plane.status()["conversation_outbox"] == 0,
        lambda: f"the data plane's conversation outbox to drain ({data_plane.status()}); {counts}",
    )
    problems = missing_conversations(cluster.admin_url, load.runs, endpoint_id)
    during_problems = [run for run in during if run.number in problems]
    assert not problems, (
        f"{len(problems)} runs lack their full conversation, {len(during_problems)} of them made during "
        f"the outage ({counts}): {describe(problems)}"
    )
    assert data_plane.status()["conversation_outbox"] == 0
    print(f"redis restart: {counts}; all {len(load.runs)} conversations complete")


def test_runs_while_the_control_plane_is_down_are_ingested_when_it_returns(
    cluster_factory: ClusterFactory, echo_wasm: bytes
) -> None:
    cluster = cluster_factory()
    endpoint_id, url = echo_endpoint(cluster, echo_wasm)
    control_plane = cluster.control_plane
    assert control_plane is not None
    load = RunLoad(url, threads=2)
    load.start()
    try:
        wait_until(lambda: len(load.runs) >= 50, lambda: f"50 runs before the stop ({len(load.runs)})")
        control_plane.stop()
        down_at = time.monotonic()
        wait_until(
            lambda: len(load.between(down_at, time.monotonic())) >= 300,
            lambda: f"300 runs answered while the control plane is down ({len(load.runs)} in all)",
        )
        up_at = time.monotonic()
        control_plane.start()
        after = len(load.runs)
        wait_until(lambda: len(load.runs) >= after + 50, lambda: f"50 runs after the restart ({after})")
    finally:
        load.stop()

    during = load.between(down_at, up_at)
    total = len(load.runs)
    counts = f"{total} runs answered, {len(during)} while the control plane was down"
    assert not load.failures, f"{counts}; {len(load.failures)} calls got no answer: {load.failures[:3]}"
    assert len(during) >= 300, f"too few runs to call this load: {counts}"
    # The SQLite file, not GET: only the background ingest can have stored these.
    wait_until(
        lambda: stored_count(cluster.database_path, endpoint_id) >= total,
        lambda: (
            f"the ingest of {total} conversations ({stored_count(cluster.database_path, endpoint_id)} "
            f"stored); {counts}"
        ),
    )
    stored = read_stored(cluster.database_path, endpoint_id)
    stored_wrong = stored_problems(stored, load.runs)
    assert not stored_wrong, (
        f"{counts}; stored {len(stored.statuses)} conversations, {stored.item_rows} items: {stored_wrong}"
    )
    sample = random.sample(during, 50) + random.sample(load.runs, 50)
    sample_wrong = missing_conversations(cluster.admin_url, sample, endpoint_id)
    assert not sample_wrong, (
        f"{counts}; {len(sample_wrong)} of a sample of {len(sample)} GETs fail: {describe(sample_wrong)}"
    )
    print(f"control plane stopped: {counts}; {len(stored.statuses)} stored, {stored.item_rows} items")


def test_control_plane_killed_while_ingesting_loses_and_duplicates_nothing(
    cluster_factory: ClusterFactory, echo_wasm: bytes
) -> None:
    first_runs, runs_made = 300, 1200
    cluster = cluster_factory(settings={"FFAAS_INGEST_CLAIM_IDLE_MS": "500"})
    endpoint_id, url = echo_endpoint(cluster, echo_wasm)
    control_plane = cluster.control_plane
    assert control_plane is not None
    database = cluster.database_path

    # A backlog made while the control plane is down, all ingested once it is back.
    control_plane.stop()
    before = RunLoad(url, threads=4, limit=first_runs)
    before.start()
    before.join()
    assert stored_count(database, endpoint_id) == 0
    control_plane.start()
    wait_until(
        lambda: stored_count(database, endpoint_id) == first_runs and pending_entries(cluster) == 0,
        lambda: (
            f"the first {first_runs} runs stored and acknowledged ({stored_count(database, endpoint_id)})"
        ),
    )
    # More runs while the control plane ingests them, and the control plane killed holding some.
    during = RunLoad(url, threads=4, limit=runs_made, first=first_runs)
    kill_holding_a_batch(cluster, WAIT_S, then=during.start)
    at_kill, pending_at_kill = stored_count(database, endpoint_id), pending_entries(cluster)
    during.join()
    runs = before.runs + during.runs
    failures = before.failures + during.failures
    assert not failures, f"{len(failures)} of {runs_made} calls got no answer: {failures[:3]}"
    assert len(runs) == runs_made
    counts = (
        f"{runs_made} runs; the control plane was SIGKILLed while ingesting them with "
        f"{at_kill} stored and {pending_at_kill} stream entries read and not acknowledged"
    )
    assert at_kill == first_runs, f"something was stored under the test's write lock: {counts}"
    assert pending_at_kill > 0, f"the killed consumer held no entries, nothing to take over: {counts}"

    control_plane.start()
    wait_until(
        lambda: stored_count(database, endpoint_id) >= runs_made,
        lambda: f"the rest of the backlog ({stored_count(database, endpoint_id)} stored); {counts}",
    )
    wait_until(lambda: pending_entries(cluster) == 0, lambda: f"no pending entries left; {counts}")
    stored = read_stored(database, endpoint_id)
    stored_wrong = stored_problems(stored, runs)
    assert not stored_wrong, (
        f"{counts}; stored {len(stored.statuses)} conversations, {stored.item_rows} items: {stored_wrong}"
    )
    assert stored.item_rows == len(ITEM_KINDS) * runs_made, counts
    sample = random.sample(runs, 100)
    sample_wrong = missing_conversations(cluster.admin_url, sample, endpoint_id)
    assert not sample_wrong, (
        f"{counts}; {len(sample_wrong)} of a sample of {len(sample)} GETs fail: {describe(sample_wrong)}"
    )
    print(f"control plane killed: {counts}; {len(stored.statuses)} stored, {stored.item_rows} items")
