"""JavaScript inside the WebAssembly sandbox: the ffaas-js engine (quickjs-ng, `engines/quickjs`) on
`WasmRuntime`, one fresh instance per run.  An engine only: no HTTP, no Redis.

A run is one instance of ffaas-js driven in steps (its protocol is in `engines/quickjs/ffaas_js.c`):
`QuickJsSession.begin` puts the processor's code and the request in on stdin and runs main() until
it is over or waits for the answers of outbound requests; `deliver` hands in answers and runs it on.
Logs and outbound requests go through three host functions (module `ffaas`) to the step's `JsHost`;
a dispatch returns at once, so the requests a processor starts together are in flight together,
and between steps the run holds its instance but no thread.

Invariants:
- Everything a run can reach outside its own memory is its stdin/stdout and its `JsHost`; it gets
  the same time and memory limits as an endpoint (`RunLimits`), enforced by wasmtime.
- Host functions find their step through a thread-local set for exactly the duration of the
  step: a step executes synchronously on one thread, so a call can never reach another run's host.
- No step raises for anything the processor does; a session is used by one thread at a time, and
  many sessions may run at once on different threads.
- Every session is closed (`with`), releasing its instance, on every path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import wasmtime

from data_plane.runtime.module_cache import ModuleCache
from data_plane.runtime.wasm import CommandResult, Outcome, RunLimits, WasmInstance, WasmRuntime
from shared.content_hash import content_hash

HOST_MODULE = "ffaas"
RUN_OVER, RUN_WAITING = 0, 1
log = logging.getLogger("ffaas.quickjs_wasm")


class JsHost(Protocol):
    """What a step may call, on the step's own thread."""

    def log(self, text: str) -> None: ...

    def dispatch(self, ticket: int, request_json: str) -> None:
        """Start sending the request; its answer goes to `QuickJsSession.deliver` with `ticket`."""
        ...


class AnsweringHost(Protocol):
    """A host that answers each request at once (`QuickJsWasm.run`: tests, benchmarks)."""

    def log(self, text: str) -> None: ...

    def dispatch(self, request_json: str) -> str: ...


@dataclass(frozen=True)
class QuickJsRun:
    """How a run ended: `result` (the JSON string `__ffaas_run` produced) when main() settled with a
    value; else `error` (the engine's report: `kind`, `message`, `stack`) when the JavaScript failed;
    else neither, and `command.outcome` says what stopped the instance (time, memory, a trap)."""

    result: str | None
    error: dict[str, Any] | None
    command: CommandResult


class EngineUnavailable(Exception):
    """The engine's module cannot be loaded; the message says why and what to do."""


class EngineLoader:
    """Loads the engine once, on a thread: when `start` is called or at the first call.  A first
    compile takes ~0.5 s of all cores; later starts load the module cache's artifact.  Calls wait
    for the load, and a failed load fails every call with its `EngineUnavailable`."""

    def __init__(self, runtime: WasmRuntime, cache: ModuleCache, path: Path) -> None:
        self._runtime, self._cache, self._path = runtime, cache, path
        self._loading: asyncio.Future[QuickJsWasm] | None = None

    def start(self) -> None:
        self._loading = asyncio.ensure_future(asyncio.to_thread(self._load))
        self._loading.add_done_callback(self._loaded)

    @property
    def state(self) -> str:
        """For `/status`: "not loaded" (no wasm processor ran yet), "loading", "ready", or
        "unavailable: <why>"."""
        if self._loading is None:
            return "not loaded"
        if not self._loading.done():
            return "loading"
        if self._loading.cancelled():
            return "not loaded"
        error = self._loading.exception()
        return "ready" if error is None else f"unavailable: {error}"

    async def __call__(self) -> QuickJsWasm:
        if self._loading is None:
            self.start()
        assert self._loading is not None
        if self._loading.done():
            return self._loading.result()  # every run after the load: no future to make
        return await asyncio.shield(self._loading)

    @staticmethod
    def _loaded(loading: asyncio.Future[QuickJsWasm]) -> None:
        if not loading.cancelled() and loading.exception() is not None:
            log.error("%s", loading.exception())

    def _load(self) -> QuickJsWasm:
        try:
            wasm = self._path.read_bytes()
        except OSError as exc:
            raise EngineUnavailable(
                f"runtime 'wasm' is unavailable: cannot read its engine {self._path} "
                f"({exc.strerror}); build it with `make install` or set FFAAS_JS_ENGINE_WASM"
            ) from None
        try:
            module = self._cache.load_or_compile(f"engine-{content_hash(wasm)}", lambda: wasm, pin=True)
        except wasmtime.WasmtimeError as exc:
            message = f"runtime 'wasm' is unavailable: {self._path} does not compile: {exc}"
            raise EngineUnavailable(message) from None
        return QuickJsWasm(self._runtime, module)


class _Current(threading.local):
    host: JsHost | None = None
    answer: bytes = b""


class QuickJsSession:
    """One run of the engine, in steps: `begin`, then `deliver` answers while `waiting`; then
    `result`.  Close it (or use `with`) to release its instance."""

    def __init__(self, engine: QuickJsWasm, instance: WasmInstance) -> None:
        self._engine = engine
        self._instance = instance
        self.waiting = False

    def __enter__(self) -> QuickJsSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def begin(self, host: JsHost, *, timeout_ms: int) -> None:
        """Run main() until the run is over or waits for answers, within `timeout_ms`."""
        self._step(host, "ffaas_begin", deadline=_deadline(timeout_ms))

    def deliver(self, host: JsHost, answers: Sequence[tuple[int, str]], *, timeout_ms: int) -> None:
        """Hand in `(ticket, answer JSON)` pairs and run on until the run is over or waits again;
        answers left when the run is over are dropped."""
        deadline = _deadline(timeout_ms)
        for ticket, answer in answers:
            if not self.waiting:
                return
            encoded = answer.encode()
            self._engine.current.answer = encoded
            self._step(host, "ffaas_deliver", ticket, len(encoded), deadline=deadline)

    @property
    def timed_out(self) -> bool:
        """The time limit of a step interrupted the run."""
        return self._instance.outcome is Outcome.TIMED_OUT

    def result(self) -> QuickJsRun:
        """How the run ended; call once it is not `waiting`."""
        return _interpret(self._instance.result())

    def close(self) -> None:
        self._instance.close()

    def _step(self, host: JsHost, export: str, *args: int, deadline: float) -> None:
        current = self._engine.current
        current.host = host
        try:
            timeout_ms = max(int((deadline - time.monotonic()) * 1000), 1)
            status = self._instance.call(export, *args, timeout_ms=timeout_ms)
        finally:
            current.host, current.answer = None, b""
        self.waiting = status == RUN_WAITING


class QuickJsWasm:
    def __init__(self, runtime: WasmRuntime, module: wasmtime.Module) -> None:
        self._runtime = runtime
        self._module = module
        self.current = _Current()
        self._linker = runtime.new_linker()
        self._define_host_functions()

    def session(
        self, source: str, request_json: str, *, with_prelude: bool, limits: RunLimits
    ) -> QuickJsSession:
        """A fresh instance for one run of `source` on the request; nothing runs until `begin`."""
        code = source.encode()
        stdin = b"%d%d\n%s%s" % (with_prelude, len(code), code, request_json.encode())
        instance = self._runtime.instance(
            self._module, argv=["ffaas-js"], env=(), stdin=stdin, limits=limits, linker=self._linker
        )
        return QuickJsSession(self, instance)

    def run(
        self, source: str, request_json: str, *, with_prelude: bool, host: AnsweringHost, limits: RunLimits
    ) -> QuickJsRun:
        """A whole run on this thread, each request answered at once by `host`."""
        deadline = _deadline(limits.timeout_ms)
        answering = _AnsweringAtOnce(host)
        with self.session(source, request_json, with_prelude=with_prelude, limits=limits) as session:
            session.begin(answering, timeout_ms=limits.timeout_ms)
            while session.waiting:
                answers, answering.answers = answering.answers, []
                session.deliver(answering, answers, timeout_ms=_left_ms(deadline))
            return session.result()

    def _define_host_functions(self) -> None:
        i32 = wasmtime.ValType.i32()
        current = self.current

        def guest_bytes(caller: wasmtime.Caller, pointer: int, length: int) -> bytes:
            memory = caller["memory"]
            assert isinstance(memory, wasmtime.Memory)
            return bytes(memory.read(caller, pointer, pointer + length))

        def log(caller: wasmtime.Caller, pointer: int, length: int) -> None:
            assert current.host is not None
            current.host.log(guest_bytes(caller, pointer, length).decode(errors="replace"))

        def dispatch(caller: wasmtime.Caller, ticket: int, pointer: int, length: int) -> None:
            assert current.host is not None
            current.host.dispatch(ticket, guest_bytes(caller, pointer, length).decode(errors="replace"))

        def take_answer(caller: wasmtime.Caller, pointer: int) -> None:
            memory = caller["memory"]
            assert isinstance(memory, wasmtime.Memory)
            memory.write(caller, current.answer, pointer)
            current.answer = b""

        linker = self._linker
        linker.define_func(HOST_MODULE, "log", wasmtime.FuncType([i32, i32], []), log, access_caller=True)
        linker.define_func(
            HOST_MODULE, "dispatch", wasmtime.FuncType([i32, i32, i32], []), dispatch, access_caller=True
        )
        linker.define_func(
            HOST_MODULE, "take_answer", wasmtime.FuncType([i32], []), take_answer, access_caller=True
        )


class _AnsweringAtOnce:
    """A `JsHost` over an `AnsweringHost`: answers are collected as requests are made."""

    def __init__(self, host: AnsweringHost) -> None:
        self._host = host
        self.answers: list[tuple[int, str]] = []

    def log(self, text: str) -> None:
        self._host.log(text)

    def dispatch(self, ticket: int, request_json: str) -> None:
        self.answers.append((ticket, self._host.dispatch(request_json)))


def _deadline(timeout_ms: int) -> float:
    return time.monotonic() + timeout_ms / 1000


def _left_ms(deadline: float) -> int:
    return max(int((deadline - time.monotonic()) * 1000), 1)


def _interpret(command: CommandResult) -> QuickJsRun:
    if command.outcome is not Outcome.COMPLETED:
        return QuickJsRun(None, None, command)
    tag, body = command.stdout[:1], command.stdout[1:]
    if tag == b"R":
        return QuickJsRun(body.decode(errors="replace"), None, command)
    if tag == b"E":
        try:
            report = json.loads(body)
        except ValueError:
            report = {"kind": "threw", "message": body.decode(errors="replace")}
        return QuickJsRun(None, report, command)
    report = {"kind": "engine", "message": f"the engine wrote no result (stdout began {tag!r})"}
    return QuickJsRun(None, report, command)
