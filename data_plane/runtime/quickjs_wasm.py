"""JavaScript inside the WebAssembly sandbox: the ffaas-js engine (quickjs-ng, `engines/quickjs`) on
`WasmRuntime`, one fresh instance per run.  An engine only: no HTTP, no Redis.

A run is one WASI command run of ffaas-js (its protocol is in `engines/quickjs/ffaas_js.c`): the
processor's code and the request go in on stdin, the result or an error report comes out on stdout,
and logs and outbound requests go through three host functions (module `ffaas`) to the run's
`JsHost`.

Invariants:
- Everything a run can reach outside its own memory is its stdin/stdout and its `JsHost`; it gets
  the same time and memory limits as an endpoint (`RunLimits`), enforced by wasmtime.
- Host functions find their run through a thread-local set for exactly the duration of the
  run: a run executes synchronously on one thread, so a call can never reach another run's host.
- `run` never raises for anything the processor does; it is safe to call from many threads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import wasmtime

from data_plane.runtime.module_cache import ModuleCache
from data_plane.runtime.wasm import CommandResult, Outcome, RunLimits, WasmRuntime
from shared.content_hash import content_hash

HOST_MODULE = "ffaas"
log = logging.getLogger("ffaas.quickjs_wasm")


class JsHost(Protocol):
    """What a run may call.  Both methods are called on the run's own thread."""

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
            module = self._cache.load_or_compile(f"engine-{content_hash(wasm)}", lambda: wasm)
        except wasmtime.WasmtimeError as exc:
            message = f"runtime 'wasm' is unavailable: {self._path} does not compile: {exc}"
            raise EngineUnavailable(message) from None
        return QuickJsWasm(self._runtime, module)


class _Current(threading.local):
    host: JsHost | None = None
    answer: bytes = b""


class QuickJsWasm:
    def __init__(self, runtime: WasmRuntime, module: wasmtime.Module) -> None:
        self._runtime = runtime
        self._module = module
        self._current = _Current()
        self._linker = runtime.new_linker()
        self._define_host_functions()

    def run(
        self, source: str, request_json: str, *, with_prelude: bool, host: JsHost, limits: RunLimits
    ) -> QuickJsRun:
        code = source.encode()
        stdin = b"%d\n%s%s" % (len(code), code, request_json.encode())
        current = self._current
        current.host, current.answer = host, b""
        try:
            command = self._runtime.run_command(
                self._module,
                argv=["ffaas-js", "1" if with_prelude else "0"],
                env=(),
                stdin=stdin,
                limits=limits,
                linker=self._linker,
            )
        finally:
            current.host, current.answer = None, b""
        return _interpret(command)

    def _define_host_functions(self) -> None:
        i32 = wasmtime.ValType.i32()
        current = self._current

        def guest_bytes(caller: wasmtime.Caller, pointer: int, length: int) -> bytes:
            memory = caller["memory"]
            assert isinstance(memory, wasmtime.Memory)
            return bytes(memory.read(caller, pointer, pointer + length))

        def log(caller: wasmtime.Caller, pointer: int, length: int) -> None:
            assert current.host is not None
            current.host.log(guest_bytes(caller, pointer, length).decode(errors="replace"))

        def dispatch(caller: wasmtime.Caller, pointer: int, length: int) -> int:
            assert current.host is not None
            request_json = guest_bytes(caller, pointer, length).decode(errors="replace")
            current.answer = current.host.dispatch(request_json).encode()
            return len(current.answer)

        def take_answer(caller: wasmtime.Caller, pointer: int) -> None:
            memory = caller["memory"]
            assert isinstance(memory, wasmtime.Memory)
            memory.write(caller, current.answer, pointer)
            current.answer = b""

        linker = self._linker
        linker.define_func(HOST_MODULE, "log", wasmtime.FuncType([i32, i32], []), log, access_caller=True)
        linker.define_func(
            HOST_MODULE, "dispatch", wasmtime.FuncType([i32, i32], [i32]), dispatch, access_caller=True
        )
        linker.define_func(
            HOST_MODULE, "take_answer", wasmtime.FuncType([i32], []), take_answer, access_caller=True
        )


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
