"""What the benchmark measures. A scenario is a function of a `Context` that adds figures to its `Results`.

Scenarios run in the order of `SCENARIOS`; one that fails is recorded as a
problem and the next still runs (what needs the hello endpoint is skipped, and
says so). A new benchmark is one more function (here, or in a module of its
own like `conversations.py`) and one more entry in `SCENARIOS`; `report.py`
prints whatever is in `Results`.
"""

from __future__ import annotations

import time

from bench.client import Response, post_json, request, time_first_success
from bench.context import Context, Options, Scenario, ScenarioError
from bench.conversations import BACKLOG, LAG, conversation_lag, ingest_backlog
from bench.js_engine import JS_ENGINE, measure_js_engine
from bench.measure import BARE, WAGI_HELLO, WAGI_HELLO_ONE_WORKER, measure_throughput
from bench.neighbours import NEIGHBOURS, measure_neighbours
from bench.processors import PROCESSORS, measure_processors
from bench.replay import REPLAY, measure_replay
from bench.results import Results, ThroughputRow
from bench.stream import STREAM, stream_latency
from bench.system import System
from bench.wrk import wrk_missing

__all__ = [
    "BARE",
    "SCENARIOS",
    "WAGI_HELLO",
    "WAGI_HELLO_ONE_WORKER",
    "Context",
    "Options",
    "Results",
    "ScenarioError",
    "ThroughputRow",
]

HELLO_BODY = b"Hello, world!\n"
FIRST_SUCCESS_TIMEOUT_S = 30.0


def _expect_2xx(response: Response, what: str) -> Response:
    if not 200 <= response.status < 300:
        raise ScenarioError(f"{what} answered {response.status}: {response.body[:500]!r}")
    return response


def _check_hello(response: Response, what: str, results: Results) -> None:
    if response.body != HELLO_BODY:
        results.problems.append(f"{what}: expected body {HELLO_BODY!r}, got {response.body[:200]!r}")


def deploy_hello(ctx: Context) -> None:
    """Starts the planes, creates an endpoint, deploys hello.wasm; times deploy -> first 200 call."""
    system, results = ctx.system, ctx.results
    ctx.say("starting redis-server, control plane and data plane")
    system.start_planes()
    control, data = system.url("control_plane"), system.url("data_plane")
    created = _expect_2xx(
        post_json(control, "/endpoint", {"name": "bench-hello"}, system.admin_headers), "POST /endpoint"
    )
    endpoint_id = str(created.json()["id"])
    wasm = ctx.options.hello_wasm.read_bytes()

    ctx.say(f"deploying {ctx.options.hello_wasm.name} ({len(wasm)} bytes) to endpoint {endpoint_id}")
    headers = {"content-type": "application/octet-stream", **system.admin_headers}
    started = time.perf_counter()
    deployed = request(control, "POST", f"/endpoint/{endpoint_id}/deploy", wasm, headers)
    deploy_s = time.perf_counter() - started
    _expect_2xx(deployed, f"POST /endpoint/{endpoint_id}/deploy")
    first = time_first_success(data, f"/{endpoint_id}", FIRST_SUCCESS_TIMEOUT_S)
    _check_hello(first.response, "first call after deploy", results)

    results.timing(
        "deploy_request", "deploy request (POST /endpoint/<id>/deploy)", deploy_s, module_bytes=len(wasm)
    )
    results.timing(
        "deploy_to_first_success",
        "deploy response -> first 200 from the data plane",
        first.elapsed_s,
        attempts=first.attempts,
        before=first.statuses_before,
    )
    ctx.hello_endpoint_id = endpoint_id


def throughput(ctx: Context) -> None:
    """wrk against the bare app, then the WAGI hello endpoint, at each concurrency: with the data
    plane's default workers (one per core), then with one worker alone; the default is restored."""
    options, results, system = ctx.options, ctx.results, ctx.system
    missing = wrk_missing()
    if missing is not None:
        results.skip_rows([WAGI_HELLO, WAGI_HELLO_ONE_WORKER, BARE], options.connections, missing)
        return
    # The bare app first, while the planes are idle: after a WAGI run the control plane may still be
    # ingesting that run's conversations, and would compete with the baseline for the CPU.
    measure_throughput(ctx, {BARE: system.start_bare_app() + "/"})
    if ctx.hello_endpoint_id is None:
        results.skipped.append(f"{WAGI_HELLO} throughput: no endpoint was deployed")
        return
    hello = f"{system.url('data_plane')}/{ctx.hello_endpoint_id}"
    results.info["data plane workers"] = str(_workers(system))
    measure_throughput(ctx, {WAGI_HELLO: hello})
    ctx.say("restarting the data plane with one worker")
    system.restart_data_plane(workers=1)
    try:
        measure_throughput(ctx, {WAGI_HELLO_ONE_WORKER: hello})
    finally:
        ctx.say("restarting the data plane with its default workers")
        system.restart_data_plane(workers=None)


def _workers(system: System) -> int:
    """How many workers the running data plane has (its `/status` says)."""
    return int(request(system.url("data_plane"), "GET", "/status").json()["workers"])


def restart_data_plane(ctx: Context) -> None:
    """Restarts the data plane; times its first call, which it serves from its disk cache."""
    if ctx.hello_endpoint_id is None:
        ctx.results.skipped.append("data-plane restart: no endpoint was deployed")
        return
    system, results = ctx.system, ctx.results
    ctx.say("restarting the data plane (SIGTERM, wait, start)")
    restart_s = system.restart("data_plane")
    data, path = system.url("data_plane"), f"/{ctx.hello_endpoint_id}"
    started = time.perf_counter()
    first = request(data, "GET", path)
    first_s = time.perf_counter() - started
    results.timing("restart_to_status_ok", "data-plane start -> GET /status 200 from every worker", restart_s)
    results.timing(
        "first_call_after_restart", "first call after the data plane restarted", first_s, status=first.status
    )
    if first.status != 200:
        results.problems.append(f"first call after restart answered {first.status}: {first.body[:200]!r}")
        later = time_first_success(data, path, FIRST_SUCCESS_TIMEOUT_S)
        results.timing(
            "first_success_after_restart",
            "first 200 after the data plane restarted",
            first_s + later.elapsed_s,
            attempts=later.attempts + 1,
            before=later.statuses_before,
        )
    else:
        _check_hello(first, "first call after restart", results)


SCENARIOS: dict[str, Scenario] = {
    "deploy": deploy_hello,
    "throughput": throughput,
    PROCESSORS: measure_processors,
    NEIGHBOURS: measure_neighbours,
    JS_ENGINE: measure_js_engine,
    BACKLOG: ingest_backlog,
    LAG: conversation_lag,
    REPLAY: measure_replay,
    STREAM: stream_latency,
    "restart": restart_data_plane,
}
