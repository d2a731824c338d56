"""Processors: the fh-http contract of SPEC.md ("JavaScript / TypeScript processors") on either runtime.

- `runtime: "v8"`: each run gets a fresh V8 context (see `runtime.v8`) holding the prelude
  (`js_prelude.js`), the processor's JavaScript and one call of `__ffaas_run`.  JS never runs on
  the event loop; host calls come back to it.
- `runtime: "wasm"`: each run is a fresh instance of the ffaas-js engine (quickjs-ng compiled to
  WebAssembly, `runtime.quickjs_wasm`), under the endpoints' limits; the same prelude is built into
  the engine.  As for endpoints (see `wagi`), a processor is first tried on the event-loop thread
  within `INLINE_BUDGET_MS`, which saves the thread hop; one that sends requests or takes longer
  runs on the worker pool (admitted by `FreshRunLimit`) from then on.

Both runtimes produce the same result JSON and go through the same response rules
(`js_response`).  Logs and outbound requests are recorded in the conversation as they happen
(`js_host`); outbound requests go through the `host.outbound_http` capability (network policy,
timeout, size cap).  Guest failures become `ServiceError`s whose messages hold the processor's own
error line; stacks go to `error_detail`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from py_mini_racer import JSEvalException, JSOOMException, JSParseException, JSPromiseError

from data_plane.conversation import Conversation
from data_plane.executors.guest_response import GuestResponse
from data_plane.executors.js_host import InlineAttemptHost, RunHost, ThreadedHost
from data_plane.executors.js_response import response_from_result
from data_plane.executors.wagi import INLINE_BUDGET_MS
from data_plane.host.outbound_http import OutboundHttp
from data_plane.incoming_request import IncomingRequest
from data_plane.registry import PreparedProcessor
from data_plane.runtime.fresh_runs import FreshRunLimit
from data_plane.runtime.quickjs_wasm import EngineUnavailable, QuickJsRun, QuickJsWasm
from data_plane.runtime.v8 import Prepare, V8Context, V8Runtime
from data_plane.runtime.wasm import Outcome, RunLimits
from shared.conversations import captured_body, headers_payload
from shared.errors import GuestError, GuestTimeout, ServiceError

PRELUDE = (Path(__file__).with_name("js_prelude.js")).read_text()
MIB = 1 << 20
STACK_EXHAUSTED = "RangeError: Maximum call stack size exceeded"

EngineCall = Callable[..., QuickJsRun]
"""`QuickJsWasm.run` with the code, request and entry point bound: takes `host` and `limits`."""
QuickJsLoader = Callable[[], Awaitable[QuickJsWasm]]
"""Gives the loaded wasm engine, or raises `EngineUnavailable` saying why runtime "wasm" cannot run."""


@dataclass(frozen=True)
class JsLimits:
    timeout_ms: int
    max_memory_bytes: int
    max_log_bytes: int


@dataclass(frozen=True)
class JsRun:
    response: GuestResponse | None
    error: ServiceError | None
    outcome: str
    detail: str | None
    elapsed_ms: float


class JsFailure(Exception):
    """A run that produced no result, in the executor's terms: the error to answer, the
    conversation's outcome and its detail."""

    def __init__(self, error: ServiceError, outcome: str, detail: str | None = None) -> None:
        super().__init__(error.message)
        self.error, self.outcome, self.detail = error, outcome, detail


def request_object(incoming: IncomingRequest) -> dict[str, Any]:
    """The request as `main` sees it: `{method, path, query, headers, body, version}`."""
    return {
        "method": incoming.method,
        "path": incoming.path,
        "query": incoming.query,
        "headers": headers_payload(incoming.headers),
        "body": captured_body(incoming.body, len(incoming.body))["body"],
        "version": incoming.version,
    }


class JsExecutor:
    def __init__(
        self,
        v8: V8Runtime,
        quickjs: QuickJsLoader,
        pool: ThreadPoolExecutor,
        fresh_runs: FreshRunLimit,
        outbound: OutboundHttp,
        limits: JsLimits,
    ) -> None:
        """`pool` runs the wasm runtime's runs, admitted by `fresh_runs`."""
        self._v8 = v8
        self._quickjs = quickjs
        self._pool = pool
        self._fresh_runs = fresh_runs
        self._outbound = outbound
        self.limits = limits
        # The engine's own memory counts: the result is built in it, so it cannot outgrow it.
        self._wasm_limits = RunLimits(
            timeout_ms=limits.timeout_ms,
            max_memory_bytes=limits.max_memory_bytes,
            max_stdout_bytes=limits.max_memory_bytes,
            max_stderr_bytes=4096,
        )
        self._inline_limits = replace(self._wasm_limits, timeout_ms=min(INLINE_BUDGET_MS, limits.timeout_ms))
        self._pool_only: set[str] = set()
        """Code hashes of processors that dispatch requests or outlast the inline budget."""

    @staticmethod
    def preparation() -> Prepare:
        """What `V8Runtime` does to each context ahead of demand: expose the host functions (they
        reach the run through `context.host`, a `RunHost`) and evaluate the prelude."""

        async def prepare(context: V8Context) -> None:
            async def log(text: Any) -> None:
                context.host.log(text)

            async def dispatch(request_json: Any) -> str:
                return str(await context.host.dispatch(request_json))

            await context.expose("__ffaas_log", log)
            await context.expose("__ffaas_dispatch", dispatch)
            await context.evaluate(PRELUDE)

        return prepare

    async def run(
        self,
        processor: PreparedProcessor,
        incoming: IncomingRequest,
        conversation: Conversation,
        *,
        with_prelude: bool,
    ) -> JsRun:
        loop = asyncio.get_running_loop()
        started = loop.time()
        host = RunHost(conversation, self._outbound, self.limits.max_log_bytes)
        request_json = json.dumps(request_object(incoming))
        try:
            if processor.runtime == "wasm":
                result = await self._evaluate_wasm(processor, request_json, with_prelude, host)
            elif processor.runtime == "v8":
                result = await self._evaluate_v8(processor, request_json, with_prelude, host)
            else:
                unknown = f"processor {processor.processor_id} has unknown runtime {processor.runtime!r}"
                raise JsFailure(GuestError(unknown), "unsupported_runtime")
            response = response_from_result(json.loads(result), incoming.body)
            return JsRun(response, None, "completed", None, (loop.time() - started) * 1000)
        except JsFailure as failure:
            return JsRun(None, failure.error, failure.outcome, failure.detail, (loop.time() - started) * 1000)
        except ServiceError as exc:  # the result broke the response rules
            return JsRun(None, exc, "invalid_response", None, (loop.time() - started) * 1000)

    async def _evaluate_v8(
        self, processor: PreparedProcessor, request_json: str, with_prelude: bool, host: RunHost
    ) -> str:
        try:
            result = await asyncio.wait_for(
                self._evaluate_in_context(processor.source, request_json, with_prelude, host),
                self.limits.timeout_ms / 1000,
            )
        except TimeoutError:
            raise self._timed_out() from None
        except JSOOMException as exc:
            raise self._out_of_memory("heap", str(exc)) from None
        except JSParseException as exc:
            raise self._syntax_error(_error_line(str(exc)), str(exc)) from None
        except (JSEvalException, JSPromiseError) as exc:
            raise self._threw(_error_line(str(exc)), str(exc)) from None
        if not isinstance(result, str):
            raise JsFailure(GuestError("the processor's run did not produce a result"), "threw")
        return result

    async def _evaluate_in_context(
        self, source: str, request_json: str, with_prelude: bool, host: RunHost
    ) -> Any:
        async with self._v8.fresh_context() as context:
            context.host = host
            call = f"__ffaas_run({request_json}, {json.dumps(with_prelude)})"
            # One evaluation for the code and the call (each costs a trip to V8's thread); the call
            # comes last, so line numbers in the processor's errors are its own.
            return await context.evaluate(f"{source}\n;{call}")

    async def _evaluate_wasm(
        self, processor: PreparedProcessor, request_json: str, with_prelude: bool, host: RunHost
    ) -> str:
        try:
            engine = await self._quickjs()
        except EngineUnavailable as exc:
            raise JsFailure(GuestError(str(exc)), "runtime_unavailable") from None
        run_engine = partial(engine.run, processor.source, request_json, with_prelude=with_prelude)
        run = None
        if processor.code_hash not in self._pool_only:
            run = self._attempt_inline(run_engine, processor.code_hash, host)
        if run is None:
            run = await self._run_on_pool(run_engine, host)
        return self._wasm_result(run)

    def _attempt_inline(self, run_engine: EngineCall, code_hash: str, host: RunHost) -> QuickJsRun | None:
        """The run, made on the event-loop thread within `INLINE_BUDGET_MS`; None if it must be made
        on the pool instead (it wants to send a request, or needs longer), which from then on is
        where this code runs.  An attempt has no effects (`InlineAttemptHost`), so nothing is lost
        or done twice."""
        attempt = InlineAttemptHost(self.limits.max_log_bytes)
        run = run_engine(host=attempt, limits=self._inline_limits)
        interrupted = run.command.outcome is Outcome.TIMED_OUT and self.limits.timeout_ms > INLINE_BUDGET_MS
        if attempt.wanted_dispatch or interrupted:
            self._pool_only.add(code_hash)
            return None
        attempt.record(host)
        return run

    async def _run_on_pool(self, run_engine: EngineCall, host: RunHost) -> QuickJsRun:
        loop = asyncio.get_running_loop()
        async with self._fresh_runs.slot():
            threaded = ThreadedHost(host, loop, time.monotonic() + self.limits.timeout_ms / 1000)
            call = partial(run_engine, host=threaded, limits=self._wasm_limits)
            try:
                run = await loop.run_in_executor(self._pool, call)
            finally:
                await threaded.finish()
        if threaded.deadline_passed:
            raise self._timed_out()
        return run

    def _wasm_result(self, run: QuickJsRun) -> str:
        if run.result is not None:
            return run.result
        if run.error is not None:
            kind, message = run.error.get("kind"), str(run.error.get("message"))
            detail = "\n".join(part for part in (message, run.error.get("stack")) if part)
            if kind == "syntax_error":
                raise self._syntax_error(message, detail)
            if kind == "out_of_memory":
                raise self._out_of_memory("memory", detail)
            if kind in ("threw", "never_settled"):
                raise self._threw(message, detail, kind)
            raise JsFailure(GuestError(f"the JavaScript engine failed: {message}"), "engine_error", detail)
        command = run.command
        match command.outcome:
            case Outcome.TIMED_OUT:
                raise self._timed_out()
            case Outcome.OUT_OF_MEMORY:
                raise self._out_of_memory("memory", command.detail)
            case Outcome.TRAPPED if "call stack exhausted" in command.detail:
                raise self._threw(STACK_EXHAUSTED, command.detail)
        stderr = command.stderr.decode(errors="replace").strip()
        reason = stderr or (command.detail.strip().splitlines() or ["no detail"])[-1].strip()
        raise JsFailure(
            GuestError(f"the JavaScript engine failed ({command.outcome}): {reason}"),
            "engine_error",
            command.detail or stderr,
        )

    def _timed_out(self) -> JsFailure:
        message = f"run exceeded {self.limits.timeout_ms} ms (FFAAS_RUN_TIMEOUT_MS)"
        return JsFailure(GuestTimeout(message), "timed_out")

    def _out_of_memory(self, what: str, detail: str) -> JsFailure:
        limit_mib = self.limits.max_memory_bytes / MIB
        message = f"run exceeded its {what} limit of {limit_mib:.1f} MiB (FFAAS_MAX_MEMORY_BYTES)"
        return JsFailure(GuestError(message), "out_of_memory", detail)

    @staticmethod
    def _syntax_error(line: str, detail: str) -> JsFailure:
        return JsFailure(GuestError(f"the processor's code does not parse: {line}"), "syntax_error", detail)

    @staticmethod
    def _threw(line: str, detail: str, outcome: str = "threw") -> JsFailure:
        return JsFailure(GuestError(f"the processor failed: {line}"), outcome, detail)


def _error_line(text: str) -> str:
    """The JS error's own line ("TypeError: x is not a function"), without V8's location prefixes."""
    for prefix in ("JavaScript rejected promise with reason: ",):
        if text.startswith(prefix):
            return text[len(prefix) :].splitlines()[0]
    lines = [line for line in text.splitlines() if line.strip()]
    for line in lines:
        head = line.split(" ", 1)[0]
        if head.endswith(":") and ("Error" in head or head == "Uncaught"):
            return line
    first = lines[0] if lines else "unknown error"
    return first.split(": ", 1)[1] if first.startswith("<anonymous>:") and ": " in first else first
