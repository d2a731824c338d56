"""The JavaScript engine in wasm (ffaas-js, built by `make engines`), driven directly: its stdin/stdout
protocol, its host functions, and both builds (with and without wizer's pre-initialisation)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from data_plane.runtime.module_cache import ModuleCache
from data_plane.runtime.quickjs_wasm import EngineLoader, EngineUnavailable, QuickJsWasm
from data_plane.runtime.wasm import Outcome, RunLimits, WasmRuntime
from data_plane.settings import BUILT_JS_ENGINE

LIMITS = RunLimits(timeout_ms=2000, max_memory_bytes=8 << 20, max_stdout_bytes=1 << 20, max_stderr_bytes=4096)
REQUEST = json.dumps(
    {"method": "GET", "path": "/p", "query": "", "headers": {}, "body": "", "version": "1.1"}
)
ENGINES = [BUILT_JS_ENGINE, BUILT_JS_ENGINE.with_name("ffaas-js.wasm")]


class Host:
    def __init__(self, answer: str = '{"response": {"code": 204, "headers": {}, "body": ""}}') -> None:
        self.calls: list[tuple[str, str]] = []
        self._answer = answer

    def log(self, text: str) -> None:
        self.calls.append(("log", text))

    def dispatch(self, request_json: str) -> str:
        self.calls.append(("dispatch", request_json))
        return self._answer


@pytest.fixture(scope="module")
def runtime() -> Iterator[WasmRuntime]:
    with WasmRuntime(max_concurrent_runs=4, max_memory_bytes=LIMITS.max_memory_bytes) as runtime:
        yield runtime


@pytest.fixture(scope="module", params=ENGINES, ids=lambda path: path.name)
def engine(request: pytest.FixtureRequest, runtime: WasmRuntime) -> QuickJsWasm:
    path: Path = request.param
    return QuickJsWasm(runtime, runtime.compile(path.read_bytes()))


def test_main_result_and_host_calls_in_order(engine: QuickJsWasm) -> None:
    code = """async function main(fh, request) {
      fh.log('naïve ☃', {n: 1});
      const answer = await fh.dispatch_request('http://example.test/x', {method: 'post', body: {a: 1}});
      console.log('after', answer.code);
      return request.path;
    }"""
    host = Host()
    run = engine.run(code, REQUEST, with_prelude=True, host=host, limits=LIMITS)
    assert run.error is None and run.result is not None
    result = json.loads(run.result)
    assert result["value"] == "/p" and result["last_dispatched"]["code"] == 204
    assert host.calls == [
        ("log", 'naïve ☃ {"n":1}'),
        ("dispatch", '{"url":"http://example.test/x","method":"post","headers":{},"body":"{\\"a\\":1}"}'),
        ("log", "after 204"),
    ]


class LaterHost:
    """Answers nothing itself: the test hands answers in, as the data plane does between steps."""

    def __init__(self) -> None:
        self.dispatched: list[tuple[int, str]] = []
        self.logs: list[str] = []

    def log(self, text: str) -> None:
        self.logs.append(text)

    def dispatch(self, ticket: int, request_json: str) -> None:
        self.dispatched.append((ticket, json.loads(request_json)["url"]))


def answer(body: str) -> str:
    return json.dumps({"response": {"code": 200, "headers": {}, "body": body}})


def test_requests_in_a_promise_all_are_all_made_before_any_answer_and_resolve_in_any_order(
    engine: QuickJsWasm,
) -> None:
    code = """async function main(fh, request) {
      const urls = ['http://a.test/', 'http://b.test/', 'http://c.test/'];
      const answers = await Promise.all(urls.map((url) => fh.dispatch_request(url)));
      fh.log('all answered');
      return answers.map((a) => a.body).join(' ');
    }"""
    host = LaterHost()
    with engine.session(code, REQUEST, with_prelude=True, limits=LIMITS) as session:
        session.begin(host, timeout_ms=LIMITS.timeout_ms)
        assert session.waiting
        assert [url for _, url in host.dispatched] == ["http://a.test/", "http://b.test/", "http://c.test/"]
        tickets = [ticket for ticket, _ in host.dispatched]
        session.deliver(host, [(tickets[2], answer("c"))], timeout_ms=LIMITS.timeout_ms)
        assert session.waiting and host.logs == []
        session.deliver(
            host, [(tickets[0], answer("a")), (tickets[1], answer("b"))], timeout_ms=LIMITS.timeout_ms
        )
        assert not session.waiting
        run = session.result()
    assert run.result is not None and json.loads(run.result)["value"] == "a b c"
    assert host.logs == ["all answered"]


def test_a_run_that_settles_before_every_answer_came_is_over(engine: QuickJsWasm) -> None:
    code = """async function main(fh, request) {
      fh.dispatch_request('http://never.test/');  // not awaited
      return 'done without it';
    }"""
    host = LaterHost()
    with engine.session(code, REQUEST, with_prelude=True, limits=LIMITS) as session:
        session.begin(host, timeout_ms=LIMITS.timeout_ms)
        assert not session.waiting and len(host.dispatched) == 1
        run = session.result()
    assert run.result is not None and json.loads(run.result)["value"] == "done without it"


def test_errors_are_reported_by_kind(engine: QuickJsWasm) -> None:
    def error_of(code: str) -> dict[str, str]:
        run = engine.run(code, REQUEST, with_prelude=False, host=Host(), limits=LIMITS)
        assert run.result is None and run.error is not None, run
        return run.error

    assert error_of("function main( {")["kind"] == "syntax_error"
    thrown = error_of("function main(r) { null.x; }")
    assert thrown["kind"] == "threw" and thrown["message"].startswith("TypeError")
    assert "processor.js:1" in thrown["stack"]
    assert error_of("async function main(r) { await new Promise(() => {}); }")["kind"] == "never_settled"
    assert error_of("const x = 1;")["message"] == "Error: the processor does not define a function main()"
    hungry = error_of("function main(r) { const a = []; for (;;) a.push('x'.repeat(1 << 16) + a.length); }")
    assert hungry["kind"] == "out_of_memory"


def test_malformed_input_is_a_report_not_a_crash(runtime: WasmRuntime, engine: QuickJsWasm) -> None:
    # The protocol itself, below QuickJsWasm.run (which always frames its input right).
    module, linker = engine._module, engine._linker
    for stdin in (b"", b"2", b"not a length\n", b"0not a length\n", b"099999\nshort", b"1\n"):
        result = runtime.run_command(
            module, argv=["ffaas-js", "0"], env=(), stdin=stdin, limits=LIMITS, linker=linker
        )
        assert result.outcome is Outcome.COMPLETED
        assert result.stdout.startswith(b"E") and json.loads(result.stdout[1:])["kind"] == "bad_input"


def test_each_run_starts_from_the_same_fresh_state(engine: QuickJsWasm) -> None:
    code = "globalThis.n = (globalThis.n || 0) + 1; function main(r) { return n + ' ' + Math.random(); }"
    runs = [engine.run(code, REQUEST, with_prelude=False, host=Host(), limits=LIMITS) for _ in range(3)]
    values = [json.loads(run.result or "null")["value"] for run in runs]
    assert [value.split()[0] for value in values] == ["1", "1", "1"]
    assert len(set(values)) == 3, "Math.random must be reseeded in every run"


def test_loader_says_what_is_missing_and_how_to_build_it(runtime: WasmRuntime, tmp_path: Path) -> None:
    missing = tmp_path / "absent.wasm"
    loader = EngineLoader(runtime, ModuleCache(runtime, tmp_path), missing)

    async def load() -> None:
        await loader()

    with pytest.raises(EngineUnavailable) as raised:
        asyncio.run(load())
    assert str(missing) in str(raised.value) and "make install" in str(raised.value)
    assert "FFAAS_JS_ENGINE_WASM" in str(raised.value)


def test_loader_compiles_once_then_loads_from_the_module_cache(runtime: WasmRuntime, tmp_path: Path) -> None:
    first, second = ModuleCache(runtime, tmp_path), ModuleCache(runtime, tmp_path)

    async def load(cache: ModuleCache) -> None:
        loader = EngineLoader(runtime, cache, BUILT_JS_ENGINE)
        await asyncio.gather(loader(), loader())

    asyncio.run(load(first))
    asyncio.run(load(second))
    assert (first.compiled, first.loaded_from_disk) == (1, 0)
    assert (second.compiled, second.loaded_from_disk) == (0, 1)
