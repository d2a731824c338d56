"""How fast the live feed is: a run's response -> its event on GET /conversation/stream, under load.

While wrk loads the hello endpoint at the highest concurrency, one client (a process of its
own) follows the whole stream (no filter), and a sampler makes its own runs one at a time,
noting when each response arrived. The latency of a sampled run is the time from its
response to its event reaching the client; it can be negative (`min_ms`): the data plane puts
the record on the Redis stream before it answers, and under load the answer can take longer
to reach its caller than the record takes to be stored and streamed.

The stream's ids are the conversations' places in storage order, so an unfiltered stream
must deliver consecutive ids: the scenario counts gaps and repeats over every event it saw
(the load's runs included), and every sampled run must arrive exactly once.

The phase lasts at least `duration_s` and until it has `lag_samples` samples (at most
PHASE_CAP_S); then the scenario waits for the events of the last samples.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import time
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from queue import Empty
from typing import Any
from urllib.parse import urlsplit

from bench.client import Connection
from bench.context import Context, ScenarioError
from bench.load import one_run
from bench.results import Latency
from bench.wrk import start_wrk, wrk_missing

STREAM = "stream"
PHASE_CAP_S = 90.0
ARRIVAL_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 30.0


@dataclass
class Received:
    """What the stream delivered: arrival times by conversation id, and every event id in order."""

    arrivals: dict[str, list[float]] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)
    error: str | None = None


def read_stream(base_url: str, headers: dict[str, str], events: Queue[Any]) -> None:
    """In a process of its own: put (event id, conversation id, arrival time) for every event.

    Its own process, so no thread of the sampling process (GIL) delays noting an arrival;
    `time.monotonic` is the same clock in both. Ends when the stream does or it is terminated.
    """
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=600)
    connection.request("GET", "/conversation/stream", headers={**headers, "accept": "text/event-stream"})
    response = connection.getresponse()
    if response.status != 200:
        events.put(("error", f"GET /conversation/stream answered {response.status}"))
        return
    events.put(("ready", None))
    fields: dict[str, str] = {}
    while line := response.readline():
        text = line.decode().rstrip("\r\n")
        if text.startswith(":"):
            continue
        if text:
            name, _, value = text.partition(":")
            fields[name] = value.removeprefix(" ")
            continue
        if "data" in fields:
            events.put(("event", (int(fields["id"]), json.loads(fields["data"])["id"], time.monotonic())))
        fields = {}
    events.put(("error", "the stream ended"))


class StreamReader:
    """The reading process, and what it reported so far."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        context = multiprocessing.get_context("spawn")
        self.events: Queue[Any] = context.Queue()
        self.process = context.Process(
            target=read_stream, args=(base_url, headers, self.events), name="stream-reader", daemon=True
        )
        self.received = Received()

    def start(self) -> None:
        self.process.start()
        kind, detail = self.events.get(timeout=READY_TIMEOUT_S)
        if kind != "ready":
            raise ScenarioError(str(detail))

    def collect(self) -> Received:
        while True:
            try:
                kind, detail = self.events.get_nowait()
            except Empty:
                return self.received
            if kind == "event":
                event_id, conversation_id, arrived = detail
                self.received.ids.append(event_id)
                self.received.arrivals.setdefault(conversation_id, []).append(arrived)
            elif kind == "error":
                self.received.error = str(detail)

    def close(self) -> None:
        self.process.terminate()
        self.process.join(timeout=5)


def stream_latency(ctx: Context) -> None:
    """Response -> SSE event for sampled runs while wrk loads hello; gaps and repeats over all events."""
    if (missing := wrk_missing()) is not None:
        ctx.results.skipped.append(f"stream latency: {missing}")
        return
    if ctx.hello_endpoint_id is None:
        ctx.results.skipped.append("stream latency: no endpoint was deployed")
        return
    system, options = ctx.system, ctx.options
    connections = max(options.connections)
    path = f"/{ctx.hello_endpoint_id}"
    reader = StreamReader(system.url("control_plane"), system.admin_headers)
    reader.start()
    try:
        ctx.say(f"stream latency: wrk on WAGI hello at {connections} connections, one client on the stream")
        wrk = start_wrk(
            f"{system.url('data_plane')}{path}", connections, PHASE_CAP_S + 30, options.max_threads
        )
        try:
            answered = _sample(ctx, system.url("data_plane"), path)
        finally:
            result = wrk.finish()
        received = _wait_for_arrivals(reader, set(answered))
    finally:
        reader.close()
    _report(ctx, received, answered, connections, result.requests_per_s, result.errors)


def _sample(ctx: Context, data_plane: str, path: str) -> dict[str, float]:
    """Runs one at a time for the phase; when each one's response arrived, by conversation id."""
    options = ctx.options
    answered: dict[str, float] = {}
    started = time.monotonic()
    with Connection(data_plane) as data:
        while True:
            elapsed = time.monotonic() - started
            if (
                elapsed >= options.duration_s and len(answered) >= options.lag_samples
            ) or elapsed > PHASE_CAP_S:
                return answered
            conversation_id, failure = one_run(data, path)
            if conversation_id is None:
                raise ScenarioError(f"sampled run GET {path} failed: {failure}")
            answered[conversation_id] = time.monotonic()


def _wait_for_arrivals(reader: StreamReader, expected: set[str]) -> Received:
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
    while True:
        received = reader.collect()
        if expected <= received.arrivals.keys() or received.error or time.monotonic() > deadline:
            return received
        time.sleep(0.01)


def _report(
    ctx: Context,
    received: Received,
    answered: dict[str, float],
    connections: int,
    req_per_s: float,
    errors: int,
) -> None:
    if received.error is not None:
        raise ScenarioError(f"reading the stream failed: {received.error}")
    ids, arrivals = received.ids, received.arrivals
    lags = [arrivals[cid][0] - at for cid, at in answered.items() if cid in arrivals]
    missing = [cid for cid in answered if cid not in arrivals]
    repeated_runs = [cid for cid, times in arrivals.items() if len(times) > 1]
    gaps = sum(1 for before, after in zip(ids, ids[1:], strict=False) if after != before + 1)
    if not lags:
        raise ScenarioError("stream latency: no sampled run reached the stream")
    ctx.results.latencies["stream"] = Latency.of(
        f"response -> event on GET /conversation/stream (hello under wrk c={connections})",
        lags,
        min_ms=round(min(lags) * 1000, 3),
        events=len(ids),
        gaps=gaps,
        repeated=len(repeated_runs),
        missed=len(missing),
        wrk_req_per_s=req_per_s,
        wrk_errors=errors,
    )
    if missing or repeated_runs or gaps:
        ctx.results.problems.append(
            f"stream: {len(missing)} sampled runs missed, {len(repeated_runs)} repeated, "
            f"{gaps} gaps in {len(ids)} event ids"
        )
    if errors:
        ctx.results.problems.append(f"stream latency: wrk load had {errors} errors")
