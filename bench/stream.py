"""How fast the live feed is: a run's response -> its event on GET /conversation/stream, under load.

While wrk loads the hello endpoint at the highest concurrency, one client follows the whole
stream (no filter), and sampler threads make their own runs, noting when each response
arrived. The latency of a sampled run is the time from its response to its event reaching
the client. The stream's ids are the conversations' places in storage order, so an
unfiltered stream must deliver consecutive ids: the scenario counts gaps and repeats over
every event it saw (the load's runs included), and every sampled run must arrive exactly once.

The phase lasts at least `duration_s` and until it has `lag_samples` samples (at most
PHASE_CAP_S); then the scenario waits for the events of the last samples.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.client import Connection
from bench.context import Context, ScenarioError
from bench.load import one_run
from bench.results import Latency
from bench.wrk import start_wrk, wrk_missing

STREAM = "stream"
SAMPLERS = 4
PHASE_CAP_S = 90.0
ARRIVAL_TIMEOUT_S = 30.0


@dataclass
class Received:
    """What the stream delivered: arrival times by conversation id, and every event id in order."""

    arrivals: dict[str, list[float]] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    error: BaseException | None = None


class StreamReader(threading.Thread):
    """Reads `text/event-stream` from GET /conversation/stream until `close()`."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        super().__init__(name="stream-reader", daemon=True)
        parts = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port or 80, timeout=60
        )
        self.connection.request(
            "GET", "/conversation/stream", headers={**headers, "accept": "text/event-stream"}
        )
        self.response = self.connection.getresponse()
        if self.response.status != 200:
            raise ScenarioError(f"GET /conversation/stream answered {self.response.status}")
        self.received = Received()
        self._closing = threading.Event()

    def run(self) -> None:
        fields: dict[str, str] = {}
        try:
            while line := self.response.readline():
                text = line.decode().rstrip("\r\n")
                if text.startswith(":"):
                    continue
                if text:
                    name, _, value = text.partition(":")
                    fields[name] = value.removeprefix(" ")
                    continue
                if "data" in fields:
                    self._note(int(fields["id"]), json.loads(fields["data"])["id"])
                fields = {}
        except Exception as exc:  # closing the socket under readline() fails in several ways
            if not self._closing.is_set():
                self.received.error = exc

    def _note(self, event_id: int, conversation_id: str) -> None:
        now = time.perf_counter()
        with self.received.lock:
            self.received.ids.append(event_id)
            self.received.arrivals.setdefault(conversation_id, []).append(now)

    def close(self) -> None:
        self._closing.set()
        if self.connection.sock is not None:
            self.connection.sock.shutdown(2)
        self.connection.close()
        self.join(timeout=5)


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
    ctx.say(f"stream latency: wrk on WAGI hello at {connections} connections, one client on the stream")
    wrk = start_wrk(f"{system.url('data_plane')}{path}", connections, PHASE_CAP_S + 30, options.max_threads)
    answered: dict[str, float] = {}
    lock = threading.Lock()
    started = time.perf_counter()

    def sample() -> None:
        with Connection(system.url("data_plane")) as data:
            while True:
                elapsed = time.perf_counter() - started
                enough = elapsed >= options.duration_s and len(answered) >= options.lag_samples
                if enough or elapsed > PHASE_CAP_S:
                    return
                conversation_id, failure = one_run(data, path)
                if conversation_id is None:
                    raise ScenarioError(f"sampled run GET {path} failed: {failure}")
                with lock:
                    answered[conversation_id] = time.perf_counter()

    try:
        with ThreadPoolExecutor(SAMPLERS) as pool:
            for future in [pool.submit(sample) for _ in range(SAMPLERS)]:
                future.result()
    finally:
        result = wrk.finish()
    _wait_for_arrivals(reader, set(answered))
    reader.close()
    _report(ctx, reader.received, answered, connections, result.requests_per_s, result.errors)


def _wait_for_arrivals(reader: StreamReader, expected: set[str]) -> None:
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
    while time.monotonic() < deadline and reader.received.error is None:
        with reader.received.lock:
            if expected <= reader.received.arrivals.keys():
                return
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
        raise ScenarioError(f"reading the stream failed: {received.error!r}")
    with received.lock:
        ids = list(received.ids)
        arrivals = {key: list(value) for key, value in received.arrivals.items()}
    lags = [arrivals[cid][0] - at for cid, at in answered.items() if cid in arrivals]
    missing = [cid for cid in answered if cid not in arrivals]
    repeated_runs = [cid for cid, times in arrivals.items() if len(times) > 1]
    gaps = sum(1 for before, after in zip(ids, ids[1:], strict=False) if after != before + 1)
    if not lags:
        raise ScenarioError("stream latency: no sampled run reached the stream")
    ctx.results.latencies["stream"] = Latency.of(
        f"response -> event on GET /conversation/stream (hello under wrk c={connections})",
        lags,
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
