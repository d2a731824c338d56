"""wrk rows: each URL at each concurrency of the options, after the warm-up, one throughput row per run."""

from __future__ import annotations

from bench.context import Context
from bench.results import ThroughputRow
from bench.wrk import WrkError, run_wrk

WAGI_HELLO = "WAGI hello"
WAGI_HELLO_ONE_WORKER = "WAGI hello, 1 worker"
BARE = "bare Starlette"


def measure_throughput(ctx: Context, urls: dict[str, str], concurrencies: tuple[int, ...] = ()) -> None:
    """Row target -> URL, at each of `concurrencies` (default: the options').  A wrk failure or a run
    with errors is a problem; the next row still runs."""
    options, results = ctx.options, ctx.results
    for target, url in urls.items():
        for connections in concurrencies or options.connections:
            try:
                if options.warmup_s > 0:
                    ctx.say(f"wrk warm-up: {target}, {connections} connections, {options.warmup_s:g} s")
                    run_wrk(url, connections, options.warmup_s, options.max_threads)
                ctx.say(f"wrk: {target}, {connections} connections, {options.duration_s:g} s")
                result = run_wrk(url, connections, options.duration_s, options.max_threads)
            except WrkError as exc:
                results.problems.append(f"{target} c={connections}: {exc}")
                continue
            results.throughput.append(ThroughputRow(target, result))
            if not result.ok:
                results.problems.append(
                    f"{target} c={connections}: {result.requests} requests, {result.error_statuses} error "
                    f"statuses, socket errors {result.socket_errors}"
                )
