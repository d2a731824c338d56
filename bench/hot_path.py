"""`python -m bench.hot_path`: the data plane's per-request CPU cost, in-process, repeatable.

The real data plane app (`data_plane.app.create_app`: real wasmtime, a real redis-server of its
own on a free port, recording on) is driven through its ASGI entry point directly, with the scope
uvicorn would build for a `GET` from wrk, for:

- `wagi`: the WAGI hello endpoint (build/examples/hello.wasm);
- `wasm`: the hello processor (bench/handlers/hello_processor.js) on `runtime: "wasm"`.

Each is measured at concurrency 1 (one request after another) and at `--concurrency` (that many
requests started together, so records share Redis round trips as they do under load).  A figure
is the process's CPU time (every thread of this process: the event loop, the worker pool, the
epoch ticker; not redis-server's) per request, the median of `--repeats` rounds of `--requests`
requests, after a warm-up round.  CPU time, not wall time: the machine may be shared, and CPU
time per request is what bounds a worker's requests per second.  uvicorn's own cost (HTTP
parsing, building the scope) is not in these figures: see `python -m bench` for end-to-end ones.

`--profile wagi` (or `wasm`) runs cProfile over one round at each `--concurrency` and prints the top
entries by own time and by cumulative time, timed by the event-loop thread's CPU clock (so time
spent waiting for the GIL or in other threads is not charged to the function waiting).

Each line also says where the guest runs went (`runs_inline`/`runs_on_pool` of `/status`: see
`runtime.inline_runs`): on a loaded machine a module may move to the worker pool, which costs a
thread hop per run, so compare figures only with the same placement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as `python bench/hot_path.py`
    sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from bench.run import _port_range  # noqa: E402
from bench.system import free_port, use_port_range  # noqa: E402
from data_plane.app import DataPlaneApp, create_app  # noqa: E402
from data_plane.settings import Settings  # noqa: E402
from shared.content_hash import content_hash  # noqa: E402
from shared.events import EndpointRoute, ProcessorRoute, RouteEvent  # noqa: E402
from shared.keys import Keys  # noqa: E402

HELLO_WASM = REPO / "build" / "examples" / "hello.wasm"
HELLO_JS = REPO / "bench" / "handlers" / "hello_processor.js"
HELLO_BODY = b"Hello, world!\n"
TARGETS = ("wagi", "wasm")
READY_TIMEOUT_S = 30.0

Scope = dict[str, Any]


@contextlib.contextmanager
def _redis_server(workdir: Path) -> Any:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench.hot_path: redis-server is not installed: run `make install`")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen([*argv, "--dir", str(workdir)], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit(f"bench.hot_path: redis-server did not answer on :{port}") from None
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait()


def _publish(redis_url: str, keys: Keys, targets: list[str]) -> dict[str, str]:
    """The path of each target (the hello endpoint, the wasm hello processor), published as the
    control plane does."""
    client = redis.Redis.from_url(redis_url)
    paths = {}
    if "wagi" in targets:
        wasm = HELLO_WASM.read_bytes()
        module_hash = content_hash(wasm)
        client.set(keys.module(module_hash), wasm)
        endpoint_id = str(uuid.uuid4())
        route = EndpointRoute(endpoint_id, str(uuid.uuid4()), module_hash, {})
        client.hset(keys.routes, endpoint_id, route.pack())
        client.publish(keys.events, RouteEvent(uuid.uuid4().hex, endpoint_id).pack())
        paths["wagi"] = f"/{endpoint_id}"
    if "wasm" in targets:
        js = HELLO_JS.read_bytes()
        code_hash = content_hash(js)
        client.set(keys.processor_code(code_hash), js)
        processor_id = str(uuid.uuid4())
        processor = ProcessorRoute(processor_id, "hello", "js", "wasm", code_hash)
        client.hset(keys.processors, processor_id, processor.pack())
        client.publish(keys.events, RouteEvent(uuid.uuid4().hex, processor_id=processor_id).pack())
        paths["wasm"] = f"/processor/{processor_id}/run"
    client.close()
    return paths


def wrk_scope(path: str) -> Scope:
    """The scope uvicorn (httptools) builds for wrk's `GET <path>`."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 4000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:4000")],
        "state": {},
    }


async def call(
    app: DataPlaneApp, scope: Scope, body: bytes = b""
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One request through the app's ASGI entry point: status, headers, body."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(dict(scope), receive, send)
    start = sent[0]
    return start["status"], list(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[DataPlaneApp]:
    app = create_app(settings)
    async with app.starlette.router.lifespan_context(app.starlette):
        yield app


async def _until_ready(app: DataPlaneApp, scope: Scope) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        status, _, body = await call(app, scope)
        if status == 200 and body == HELLO_BODY:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"bench.hot_path: {scope['path']} answered {status}: {body[:200]!r}")
        await asyncio.sleep(0.05)


async def _round(app: DataPlaneApp, scope: Scope, requests: int, concurrency: int) -> None:
    done = 0
    while done < requests:
        batch = min(concurrency, requests - done)
        answers = await asyncio.gather(*(call(app, scope) for _ in range(batch)))
        for status, _, body in answers:
            if status != 200 or body != HELLO_BODY:
                raise SystemExit(f"bench.hot_path: {scope['path']} answered {status}: {body[:200]!r}")
        done += batch


async def _placement(app: DataPlaneApp) -> str:
    """Where guest runs went so far, from `/status`."""
    status, _, body = await call(app, wrk_scope("/status"))
    answer = json.loads(body) if status == 200 else {}
    return " ".join(f"{key}={answer.get(key)}" for key in ("runs_inline", "runs_on_pool", "pool_only_guests"))


async def measure(
    app: DataPlaneApp, scope: Scope, *, requests: int, concurrency: int, repeats: int
) -> tuple[float, list[float]]:
    """Median process CPU µs per request over `repeats` rounds (after one warm-up round), and all."""
    await _round(app, scope, requests, concurrency)
    figures = []
    for _ in range(repeats):
        started = time.process_time()
        await _round(app, scope, requests, concurrency)
        figures.append((time.process_time() - started) / requests * 1e6)
    return statistics.median(figures), figures


async def profile(app: DataPlaneApp, scope: Scope, *, requests: int, concurrency: int, top: int) -> str:
    await _round(app, scope, requests, concurrency)
    profiler = cProfile.Profile(time.thread_time)  # the event-loop thread's CPU time, not GIL waits
    profiler.enable()
    await _round(app, scope, requests, concurrency)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


async def _main(args: argparse.Namespace) -> None:
    targets = [args.profile] if args.profile else args.target or list(TARGETS)
    with contextlib.ExitStack() as stack:
        workdir = args.data_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ffaas-hot-")))
        url = stack.enter_context(_redis_server(workdir))
        keys = Keys("hot")
        settings = Settings(
            redis_url=url,
            redis_prefix="hot",
            data_dir=workdir,
            plane_id="hot-path",
            conversation_stream_max_length=10_000,
        )
        async with running_app(settings) as app:
            scopes = {target: wrk_scope(path) for target, path in _publish(url, keys, targets).items()}
            for scope in scopes.values():
                await _until_ready(app, scope)
            if args.profile:
                top = args.top
                for concurrency in args.concurrency:
                    print(f"# {args.profile} at c={concurrency}")
                    print(
                        await profile(
                            app,
                            scopes[args.profile],
                            requests=args.requests,
                            concurrency=concurrency,
                            top=top,
                        )
                    )
                return
            for target in targets:
                for concurrency in args.concurrency:
                    median, figures = await measure(
                        app,
                        scopes[target],
                        requests=args.requests,
                        concurrency=concurrency,
                        repeats=args.repeats,
                    )
                    placed = await _placement(app)
                    rounds = " ".join(f"{figure:.0f}" for figure in figures)
                    print(
                        f"{target:5} c={concurrency:<3} {median:7.1f} µs CPU/request, min {min(figures):.1f}"
                        f"  (rounds: {rounds}; {placed})",
                        flush=True,
                    )


def _run(coroutine: Awaitable[None]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency of the planes
        asyncio.run(coroutine)  # type: ignore[arg-type]
        return
    uvloop.run(coroutine)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hot_path", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", action="append", choices=TARGETS, help="default: both")
    parser.add_argument("--requests", type=int, default=2000, help="requests per round (default 2000)")
    parser.add_argument("--repeats", type=int, default=7, help="measured rounds (default 7)")
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(item) for item in text.split(",")],
        default=[1, 50],
        help="comma-separated requests in flight (default 1,50)",
    )
    parser.add_argument(
        "--ports", type=_port_range, help="take Redis's port from FIRST-LAST (default: any free port)"
    )
    parser.add_argument("--data-dir", type=Path, help="the data plane's data dir (default: a temporary one)")
    parser.add_argument("--profile", choices=TARGETS, help="cProfile one round of this target instead")
    parser.add_argument("--top", type=int, default=30, help="profile entries shown (default 30)")
    args = parser.parse_args(argv)
    if args.ports is not None:
        use_port_range(*args.ports)
    if not HELLO_WASM.is_file():
        print(f"bench.hot_path: {HELLO_WASM} is missing: run `make -C examples`", file=sys.stderr)
        return 2
    _run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
