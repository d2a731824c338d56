"""The wasm JavaScript engine in-process: what one run of ffaas-js costs, with and without wizer.

No HTTP and no planes: `QuickJsWasm.run` of the hello processor (`bench/handlers/hello_processor.js`)
in a loop on one thread, under the data plane's default limits, for each engine file
`make engines` builds: `ffaas-js.wasm` (creates the JavaScript runtime and context and evaluates the
prelude in every run) and `ffaas-js.wizer.wasm` (starts from a snapshot taken after that work).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import wasmtime

from bench.context import Context, ScenarioError
from bench.workerd import HANDLERS
from data_plane.runtime.quickjs_wasm import QuickJsRun, QuickJsWasm
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


def _compiled(runtime: WasmRuntime, path: Path) -> wasmtime.Module:
    return runtime.compile(path.read_bytes())


def _check(run: QuickJsRun) -> None:
    result = run.result
    if result is None or json.loads(result).get("value") != "Hello, world!\n":
        raise ScenarioError(f"{JS_ENGINE}: the hello processor did not answer hello: {run!r}"[:500])
