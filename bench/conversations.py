"""How fast conversations reach the control plane: the ingest rate of a backlog, and the lag under load.

- `ingest_backlog`: the control plane is stopped, `backlog_runs` runs are made (their
  records wait in the Redis stream), the control plane is started, and its SQLite file
  is polled until every one is stored. The rate is taken from the first commit seen
  to the last (process start-up excluded; the whole time is reported too).
- `conversation_lag`: while wrk loads the hello endpoint at the highest concurrency,
  sampler threads make their own runs and measure, from receiving a run's response,
  (1) the time to the first 200 of `GET /conversation/<id>` (polled with no sleep:
  the route's catch_up ingests on demand), then, in a second load phase,
  (2) the time until the conversation is in the SQLite file (polled every 1 ms, no
  GET: the background ingest alone).

Each phase lasts at least `duration_s` and until it has `lag_samples` samples.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import redis

from bench.client import Connection
from bench.context import Context, ScenarioError
from bench.database import ConversationFile
from bench.load import make_runs, one_run
from bench.results import Latency
from bench.wrk import start_wrk, wrk_missing
from shared.keys import Keys

BACKLOG = "ingest"
LAG = "lag"
RUN_CONNECTIONS = 8
"""Client connections making the backlog (the data plane, not the client, is the limit)."""
SAMPLERS = 4
"""Threads making sampled runs during the lag phases, each one run at a time."""
INGEST_POLL_S = 0.002
DB_POLL_S = 0.001
SETTLE_TIMEOUT_S = 60.0
INGEST_TIMEOUT_S = 120.0
SAMPLE_TIMEOUT_S = 30.0
PHASE_CAP_S = 90.0
"""A lag phase ends after this long even without enough samples (and says so)."""


def ingest_backlog(ctx: Context) -> None:
    """Stop the control plane, make the backlog, start it; conversations/s and items/s to store it."""
    if ctx.hello_endpoint_id is None:
        ctx.results.skipped.append("ingest rate: no endpoint was deployed")
        return
    system, results, count = ctx.system, ctx.results, ctx.options.backlog_runs
    with ConversationFile(system.database_path) as stored:
        wait_until_ingested(ctx, stored)
        base = stored.conversations()
        ctx.say("stopping the control plane")
        system.stop("control_plane")
        ctx.say(f"making {count} runs of hello while the control plane is down")
        runs = make_runs(system.url("data_plane"), f"/{ctx.hello_endpoint_id}", count, RUN_CONNECTIONS)
        if runs.failures:
            results.problems.append(f"ingest rate: runs for the backlog failed: {runs.failures}")
        target = base + len(runs.conversation_ids)
        ctx.say(f"starting the control plane on a backlog of {len(runs.conversation_ids)} conversations")
        launched = time.perf_counter()
        system.launch_plane("control_plane")
        first: tuple[float, int, int] | None = None
        while (conversations := stored.conversations()) < target:
            if first is None and conversations > base:
                first = (time.perf_counter(), conversations, stored.audit_items())
            system.check_running("control_plane")
            if time.perf_counter() - launched > INGEST_TIMEOUT_S:
                raise ScenarioError(
                    f"backlog not ingested in {INGEST_TIMEOUT_S:.0f} s: {conversations}/{target}"
                )
            time.sleep(INGEST_POLL_S)
        done, items = time.perf_counter(), stored.audit_items()
        system.wait_ready("control_plane")
    backlog = len(runs.conversation_ids)
    if first is None or done <= first[0]:
        raise ScenarioError("the whole backlog appeared in one commit: make --backlog larger")
    span = done - first[0]
    detail: dict[str, Any] = {
        "backlog": backlog,
        "measured_over_s": round(span, 3),
        "start_to_first_commit_s": round(first[0] - launched, 3),
    }
    label = f"ingest of a {backlog}-run backlog (first commit -> last)"
    results.rate("ingest_conversations", label, (target - first[1]) / span, "conversations/s", **detail)
    results.rate("ingest_items", label, (items - first[2]) / span, "audit items/s", **detail)
    results.rate("backlog_runs", "runs made for the backlog (control plane down)", runs.per_s, "runs/s")
    results.timing(
        "ingest_backlog_total", f"control-plane start -> backlog of {backlog} stored", done - launched
    )


def wait_until_ingested(ctx: Context, stored: ConversationFile) -> None:
    """Until the SQLite file holds every conversation in the stream (earlier scenarios' runs)."""
    client = redis.Redis.from_url(ctx.system.redis_url)
    stream = Keys(ctx.system.redis_prefix).conversations
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    try:
        while (in_stream := int(client.xlen(stream))) > (in_file := stored.conversations()):
            if time.monotonic() > deadline:
                raise ScenarioError(
                    f"earlier runs not ingested: {in_file} stored of {in_stream} in the stream"
                )
            time.sleep(0.05)
    finally:
        client.close()


def conversation_lag(ctx: Context) -> None:
    """Response -> GET 200 and response -> in SQLite, each while wrk loads the hello endpoint."""
    if (missing := wrk_missing()) is not None:
        ctx.results.skipped.append(f"conversation lag: {missing}")
        return
    if ctx.hello_endpoint_id is None:
        ctx.results.skipped.append("conversation lag: no endpoint was deployed")
        return
    connections = max(ctx.options.connections)
    under = f"hello under wrk c={connections}"
    with _loaded(ctx, "GET lag") as load:
        lags, before = _sample_get_lag(ctx)
    ctx.results.latencies["lag_get"] = Latency.of(
        f"response -> GET /conversation 200 ({under})", lags, **load, answers_before_200=before
    )
    if before:
        ctx.results.problems.append(f"GET /conversation/<id> right after the run answered {before} first")
    with _loaded(ctx, "SQLite lag") as load:
        lags = _sample_file_lag(ctx)
    ctx.results.latencies["lag_sqlite"] = Latency.of(
        f"response -> stored in SQLite, no GET ({under})", lags, **load, poll_ms=DB_POLL_S * 1000
    )


@contextmanager
def _loaded(ctx: Context, what: str) -> Iterator[dict[str, Any]]:
    """wrk on the hello endpoint at the highest concurrency while the block runs; yields its figures."""
    connections = max(ctx.options.connections)
    url = f"{ctx.system.url('data_plane')}/{ctx.hello_endpoint_id}"
    ctx.say(f"{what}: wrk on WAGI hello at {connections} connections while sampling")
    wrk = start_wrk(url, connections, PHASE_CAP_S + 30, ctx.options.max_threads)
    figures: dict[str, Any] = {}
    try:
        yield figures
    except BaseException:
        wrk.kill()
        raise
    result = wrk.finish()
    figures.update(wrk_req_per_s=result.requests_per_s, wrk_errors=result.errors)
    if not result.ok:
        ctx.results.problems.append(
            f"{what}: wrk load had {result.errors} errors ({result.requests} requests)"
        )


def _phase_done(ctx: Context, started: float, samples: Callable[[], int]) -> bool:
    elapsed = time.perf_counter() - started
    enough = elapsed >= ctx.options.duration_s and samples() >= ctx.options.lag_samples
    return enough or elapsed > PHASE_CAP_S


def _sample_get_lag(ctx: Context) -> tuple[list[float], dict[str, int]]:
    """SAMPLERS threads: a run, then GET its conversation with no pause until 200; the delays."""
    system, path = ctx.system, f"/{ctx.hello_endpoint_id}"
    lags: list[float] = []
    before: Counter[str] = Counter()
    lock = threading.Lock()
    started = time.perf_counter()

    def sample() -> None:
        with Connection(system.url("control_plane")) as control:
            while not _phase_done(ctx, started, lambda: len(lags)):
                # A new data-plane connection per run: while the GETs below wait for the control plane
                # (seconds when it lags), a kept one would pass the server's keep-alive timeout and be
                # closed under the next run (RemoteDisconnected).
                with Connection(system.url("data_plane")) as data:
                    conversation_id = _run(data, path)
                received = time.perf_counter()
                while (status := control.request("GET", f"/conversation/{conversation_id}").status) != 200:
                    with lock:
                        before[str(status)] += 1
                    if time.perf_counter() - received > SAMPLE_TIMEOUT_S:
                        raise ScenarioError(
                            f"conversation {conversation_id}: no 200 within {SAMPLE_TIMEOUT_S} s"
                        )
                with lock:
                    lags.append(time.perf_counter() - received)

    _run_threads(sample)
    _check_samples(ctx, "GET lag", lags)
    return lags, dict(before)


def _sample_file_lag(ctx: Context) -> list[float]:
    """SAMPLERS threads make runs; this thread polls the SQLite file every ms for their conversations."""
    system, path = ctx.system, f"/{ctx.hello_endpoint_id}"
    waiting: dict[str, float] = {}
    lags: list[float] = []
    lock = threading.Lock()
    stop = threading.Event()
    started = time.perf_counter()

    def sample() -> None:
        with Connection(system.url("data_plane")) as data:
            while not stop.is_set() and not _phase_done(ctx, started, lambda: len(lags)):
                conversation_id = _run(data, path)
                with lock:
                    waiting[conversation_id] = time.perf_counter()

    with ThreadPoolExecutor(SAMPLERS) as pool, ConversationFile(system.database_path) as stored:
        futures = [pool.submit(sample) for _ in range(SAMPLERS)]
        try:
            _poll_file(stored, futures, waiting, lags, lock)
        finally:
            stop.set()
        _raise_first(futures)
    _check_samples(ctx, "SQLite lag", lags)
    return lags


def _poll_file(
    stored: ConversationFile,
    samplers: list[Future[None]],
    waiting: dict[str, float],
    lags: list[float],
    lock: threading.Lock,
) -> None:
    """Every DB_POLL_S: move the `waiting` conversations now stored to `lags`; until the samplers end."""
    deadline = None
    while True:
        with lock:
            ids = list(waiting)[:500]
        seen = stored.stored_among(ids)
        now = time.perf_counter()
        with lock:
            lags.extend(now - waiting.pop(conversation_id) for conversation_id in seen)
            left = len(waiting)
        if all(future.done() for future in samplers):
            deadline = deadline or now + SAMPLE_TIMEOUT_S
            if not left:
                return
            if now > deadline:
                raise ScenarioError(f"{left} sampled conversations not in SQLite after {SAMPLE_TIMEOUT_S} s")
        time.sleep(DB_POLL_S)


def _run(connection: Connection, path: str) -> str:
    conversation_id, failure = one_run(connection, path)
    if conversation_id is None:
        raise ScenarioError(f"sampled run GET {path} failed: {failure}")
    return conversation_id


def _run_threads(work: Callable[[], None]) -> None:
    with ThreadPoolExecutor(SAMPLERS) as pool:
        _raise_first([pool.submit(work) for _ in range(SAMPLERS)])


def _raise_first(futures: list[Future[None]]) -> None:
    for future in futures:
        future.result()


def _check_samples(ctx: Context, what: str, lags: list[float]) -> None:
    if not lags:
        raise ScenarioError(f"{what}: no sample")
    if len(lags) < ctx.options.lag_samples:
        ctx.results.problems.append(
            f"{what}: only {len(lags)} samples in {PHASE_CAP_S:.0f} s (wanted {ctx.options.lag_samples})"
        )
