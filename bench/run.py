"""The benchmark's command line: `python -m bench [--duration S] [--connections 1,50] ...`.

Checks what it needs before starting anything (build/examples/hello.wasm,
redis-server; without wrk the throughput rows and the lag are skipped and say
so, the rest still runs; without workerd only its rows are), starts the system
under test in a temporary directory, runs the scenarios, prints the table and
writes the JSON. Every process it started is stopped on
the way out, also on Ctrl-C, SIGTERM or an error. Exit status: 0 when every
scenario ran cleanly, 1 when any problem was recorded, 2 when it could not start.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

if __package__ in (None, ""):  # run as `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.context import BOMB_KINDS, Context, Options, ScenarioError
from bench.processors import PROCESSORS
from bench.report import format_report, write_json
from bench.results import Results
from bench.scenarios import SCENARIOS
from bench.system import REPO, System, SystemUnderTestError, use_port_range
from bench.wrk import WrkError, wrk_missing

HELLO_WASM = REPO / "build" / "examples" / "hello.wasm"
RESULTS_JSON = REPO / "bench" / "results" / "latest.json"


def _connections(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(item) for item in text.split(",") if item.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _port_range(text: str) -> tuple[int, int]:
    first, dash, last = text.partition("-")
    try:
        bounds = (int(first), int(last))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FIRST-LAST, e.g. 23000-23999, got {text!r}") from None
    if not dash or not 1 <= bounds[0] <= bounds[1] <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected FIRST-LAST with 1 <= FIRST <= LAST <= 65535, got {text!r}"
        )
    return bounds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmark FFAAS.")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    parser.add_argument(
        "--connections",
        type=_connections,
        default=(1, 50),
        help="comma-separated wrk concurrencies (default 1,50)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        help="seconds of discarded wrk load before each run (default 1; 0 to skip)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="most wrk threads per run, never more than connections (default 2)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=list(SCENARIOS),
        help="run only these scenarios (repeatable; default: all, in order)",
    )
    parser.add_argument(
        "--backlog",
        type=_positive,
        default=5000,
        help="runs made while the control plane is down, for the ingest rate (default 5000)",
    )
    parser.add_argument(
        "--lag-samples",
        type=_positive,
        default=200,
        help="fewest samples of each conversation-lag measurement (default 200)",
    )
    parser.add_argument(
        "--replay-runs",
        type=_positive,
        default=200,
        help="recorded runs the batch-replay scenario replays (default 200)",
    )
    parser.add_argument(
        "--v8-bomb",
        choices=BOMB_KINDS,
        default="typed-array",
        help="what the neighbours scenario's v8 memory bomb allocates (default typed-array: off-heap "
        "buffers, which only the engine workers' OS cap stops; array: a JS array of arrays)",
    )
    parser.add_argument(
        "--wasm-bomb",
        choices=BOMB_KINDS,
        default="typed-array",
        help="what the neighbours scenario's wasm memory bomb allocates (default typed-array)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="JSON figures of an earlier run (its --output), e.g. of the code before a change: the "
        "neighbours' target compares this run's p99 with neighbours to that run's p99 alone",
    )
    parser.add_argument(
        "--neighbour-connections",
        type=_positive,
        default=1,
        help="connections calling each neighbour in the neighbours scenario (default 1)",
    )
    parser.add_argument(
        "--ports",
        type=_port_range,
        default=None,
        metavar="FIRST-LAST",
        help="take every server's port from this range, e.g. 23000-23999 (default: any free port)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_JSON, help="JSON output file")
    parser.add_argument(
        "--keep-workdir",
        action="store_true",
        help="keep the temporary directory (process logs, data dir) and print its path",
    )
    return parser.parse_args(argv)


def preflight(selected: list[str]) -> None:
    """Fails before anything starts if a tool or the module a scenario needs is missing."""
    missing = []
    if "deploy" in selected and not HELLO_WASM.is_file():
        missing.append(
            f"{HELLO_WASM.relative_to(REPO)} is missing: run `make -C examples` "
            "(its toolchain comes with `make install`)"
        )
    if "deploy" in selected and shutil.which("redis-server") is None:
        missing.append("redis-server is not installed: run `make install`")
    if missing:
        raise SystemExit("bench: " + "\nbench: ".join(missing))


def baseline_p99s(path: Path) -> dict[tuple[str, int], float]:
    """The p99 of every throughput row of an earlier run's JSON figures (`--output`)."""
    try:
        rows = json.loads(path.read_text())["throughput"]
        return {(row["target"], int(row["connections"])): float(row["latency_ms"]["99"]) for row in rows}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"bench: --baseline {path}: not the JSON figures of a bench run ({exc!r})") from None


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C, through the `with` that stops the processes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = args.scenario or list(SCENARIOS)
    selected = [name for name in SCENARIOS if name in selected]
    try:
        preflight(selected)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    if {"throughput", "lag", PROCESSORS} & set(selected) and (absent := wrk_missing()) is not None:
        say(f"{absent}; the throughput rows and the lag are skipped, the other scenarios run")
    signal.signal(signal.SIGTERM, _terminate)
    if args.ports is not None:
        use_port_range(*args.ports)

    options = Options(
        args.duration,
        args.connections,
        args.warmup,
        args.threads,
        HELLO_WASM,
        backlog_runs=args.backlog,
        lag_samples=args.lag_samples,
        replay_runs=args.replay_runs,
        v8_bomb=args.v8_bomb,
        wasm_bomb=args.wasm_bomb,
        neighbour_connections=args.neighbour_connections,
    )
    results = Results(baseline_p99_ms=baseline_p99s(args.baseline) if args.baseline else {})
    workdir = Path(tempfile.mkdtemp(prefix="ffaas-bench-"))
    try:
        with System(workdir, python=sys.executable) as system:
            context = Context(system, options, results, say)
            for name in selected:
                try:
                    SCENARIOS[name](context)
                except (ScenarioError, SystemUnderTestError, WrkError, TimeoutError, OSError) as exc:
                    results.problems.append(f"{name}: {exc}")
                    say(f"scenario {name} failed: {exc}")
            say("stopping every process the benchmark started")
    except KeyboardInterrupt:
        say("interrupted; every process the benchmark started has been stopped")
        return 130
    finally:
        if args.keep_workdir:
            say(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print(format_report(results))
    write_json(results, options, args.output)
    say(f"figures written to {args.output}")
    return 1 if results.problems else 0


if __name__ == "__main__":
    sys.exit(main())
