"""The JavaScript engines alone: what one run costs on each.

wasm, in-process: one run of ffaas-js, with and without wizer.

No HTTP and no planes: `QuickJsWasm.run` of the hello processor (`bench/handlers/hello_processor.js`)
in a loop on one thread, under the data plane's default limits, for each engine file
`make engines` builds: `ffaas-js.wasm` (creates the JavaScript runtime and context and evaluates the
prelude in every run) and `ffaas-js.wizer.wasm` (starts from a snapshot taken after that work).

v8: the same processor through `V8Engines` (one engine worker process, isolated-vm), one run after
the other from the event loop: a fresh context per run, the pipe both ways included.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import wasmtime

from bench.context import Context, ScenarioError
from bench.workerd import HANDLERS
from data_plane.runtime.quickjs_wasm import QuickJsRun, QuickJsWasm
from data_plane.runtime.v8_engines import EngineSettings, V8Engines
from data_plane.runtime.wasm import RunLimits, WasmRuntime
from data_plane.settings import BUILT_JS_ENGINE, Settings

JS_ENGINE = "js-engine"
RUNS = 2000
WARM_UP_RUNS = 100
REQUEST = {"method": "GET", "path": "/", "query": "", "headers": {}, "body": "", "version": "HTTP/1.1"}


class _QuietHost:
    def log(self, text: str) -> None:
        pass

    def dispatch(self, request_json: str) -> str:
        raise AssertionError("the hello processor sends no requests")


def measure_js_engine(ctx: Context) -> None:
    defaults = Settings()
    limits = RunLimits(
        timeout_ms=defaults.run_timeout_ms,
        max_memory_bytes=defaults.max_memory_bytes,
        max_stdout_bytes=defaults.max_memory_bytes,
        max_stderr_bytes=4096,
    )
    source = (HANDLERS / "hello_processor.js").read_text()
    request_json = json.dumps(REQUEST)
    runtime = WasmRuntime(max_concurrent_runs=4, max_memory_bytes=defaults.max_memory_bytes)
    runtime.start()
    try:
        for key, path in (("plain", BUILT_JS_ENGINE.with_name("ffaas-js.wasm")), ("wizer", BUILT_JS_ENGINE)):
            if not path.is_file():
                raise ScenarioError(f"{path} is missing: run `make engines`")
            ctx.say(f"{JS_ENGINE}: {RUNS} runs of {path.name}")
            engine = QuickJsWasm(runtime, _compiled(runtime, path))
            for _ in range(WARM_UP_RUNS):
                _check(engine.run(source, request_json, with_prelude=False, host=_QuietHost(), limits=limits))
            started = time.perf_counter()
            for _ in range(RUNS):
                engine.run(source, request_json, with_prelude=False, host=_QuietHost(), limits=limits)
            per_run_s = (time.perf_counter() - started) / RUNS
            ctx.results.timing(
                f"js_engine_{key}",
                f"one hello run of {path.name}, in-process",
                per_run_s,
                runs=RUNS,
                engine_bytes=path.stat().st_size,
            )
    finally:
        runtime.close()
    ctx.say(f"{JS_ENGINE}: {RUNS} runs on a V8 engine worker")
    per_run_s = asyncio.run(_v8_per_run_s(source, request_json, defaults))
    label = "one hello run on a V8 engine worker (isolated-vm)"
    ctx.results.timing("js_engine_v8", label, per_run_s, runs=RUNS)


async def _v8_per_run_s(source: str, request_json: str, defaults: Settings) -> float:
    engines = V8Engines(
        EngineSettings(
            engines=1,
            max_runs=defaults.v8_runs,
            max_memory_bytes=defaults.max_memory_bytes,
            restart_after=defaults.v8_engine_restart_runs,
        )
    )
    await engines.start()
    try:

        async def one() -> str:
            limits = (defaults.run_timeout_ms, defaults.max_log_bytes)
            async with engines.run("hello", source, request_json, False, *limits) as run:
                while (message := await run.next())["t"] not in ("done", "fail"):
                    pass
            return str(message.get("result"))

        for _ in range(WARM_UP_RUNS):
            if json.loads(await one()).get("value") != "Hello, world!\n":
                raise ScenarioError(f"{JS_ENGINE}: the hello processor did not answer hello on V8")
        started = time.perf_counter()
        for _ in range(RUNS):
            await one()
        return (time.perf_counter() - started) / RUNS
    finally:
        await engines.close()


def _compiled(runtime: WasmRuntime, path: Path) -> wasmtime.Module:
    return runtime.compile(path.read_bytes())


def _check(run: QuickJsRun) -> None:
    result = run.result
    if result is None or json.loads(result).get("value") != "Hello, world!\n":
        raise ScenarioError(f"{JS_ENGINE}: the hello processor did not answer hello: {run!r}"[:500])
