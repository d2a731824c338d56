"""Processors on `runtime: "wasm"`: each run is a fresh instance of the ffaas-js engine (quickjs-ng
compiled to WebAssembly, `runtime.quickjs_wasm`, with the prelude built in), under the endpoints'
limits.

Where a run happens, as for endpoints (see `wagi`): a processor is first tried on the event-loop
thread within `INLINE_BUDGET_MS`, which saves the thread hop.  That attempt has no effects
(`InlineAttemptHost`: a dispatch is refused unsent, logs are only kept), so a processor that wants to
send a request, or needs longer, is run again from scratch on the worker pool (admitted by
`FreshRunLimit`) and from then on always runs there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial

from data_plane.executors import js_failure
from data_plane.executors.js_failure import STACK_EXHAUSTED
from data_plane.executors.js_host import InlineAttemptHost, RunHost, ThreadedHost
from data_plane.executors.wagi import INLINE_BUDGET_MS
from data_plane.registry import PreparedProcessor
from data_plane.runtime.fresh_runs import FreshRunLimit
from data_plane.runtime.quickjs_wasm import EngineUnavailable, QuickJsRun, QuickJsWasm
from data_plane.runtime.wasm import Outcome, RunLimits
from shared.conversations import RunOutcome

EngineCall = Callable[..., QuickJsRun]
"""`QuickJsWasm.run` with the code, request and entry point bound: takes `host` and `limits`."""
QuickJsLoader = Callable[[], Awaitable[QuickJsWasm]]
"""Gives the loaded engine, or raises `EngineUnavailable` saying why runtime "wasm" cannot run."""


class WasmEvaluator:
    def __init__(
        self,
        quickjs: QuickJsLoader,
        pool: ThreadPoolExecutor,
        fresh_runs: FreshRunLimit,
        *,
        timeout_ms: int,
        max_memory_bytes: int,
    ) -> None:
        self._quickjs = quickjs
        self._pool = pool
        self._fresh_runs = fresh_runs
        self._timeout_ms = timeout_ms
        # The engine's memory holds the result too, so the result can never outgrow the memory limit.
        self._limits = RunLimits(
            timeout_ms=timeout_ms,
            max_memory_bytes=max_memory_bytes,
            max_stdout_bytes=max_memory_bytes,
            max_stderr_bytes=4096,
        )
        self._inline_limits = replace(self._limits, timeout_ms=min(INLINE_BUDGET_MS, timeout_ms))
        self._pool_only: set[str] = set()
        """Code hashes of processors that dispatch requests or outlast the inline budget."""

    async def evaluate(
        self, processor: PreparedProcessor, request_json: str, with_prelude: bool, host: RunHost
    ) -> str:
        """The JSON of `__ffaas_run`, or `JsFailure`."""
        try:
            engine = await self._quickjs()
        except EngineUnavailable as exc:
            raise js_failure.engine_failed(str(exc), "", RunOutcome.RUNTIME_UNAVAILABLE) from None
        run_engine = partial(engine.run, processor.source, request_json, with_prelude=with_prelude)
        run = None
        if processor.code_hash not in self._pool_only:
            run = self._attempt_inline(run_engine, processor.code_hash, host)
        if run is None:
            run = await self._run_on_pool(run_engine, host)
        return self._result(run)

    def _attempt_inline(self, run_engine: EngineCall, code_hash: str, host: RunHost) -> QuickJsRun | None:
        """The run, made on the event-loop thread within `INLINE_BUDGET_MS`; None if it must be made
        on the pool instead, which from then on is where this code runs."""
        attempt = InlineAttemptHost(host.log_budget.max_bytes)
        run = run_engine(host=attempt, limits=self._inline_limits)
        interrupted = run.command.outcome is Outcome.TIMED_OUT and self._timeout_ms > INLINE_BUDGET_MS
        if attempt.wanted_dispatch or interrupted:
            self._pool_only.add(code_hash)
            return None
        attempt.record(host)
        return run

    async def _run_on_pool(self, run_engine: EngineCall, host: RunHost) -> QuickJsRun:
        loop = asyncio.get_running_loop()
        async with self._fresh_runs.slot():
            threaded = ThreadedHost(host, loop, time.monotonic() + self._timeout_ms / 1000)
            call = partial(run_engine, host=threaded, limits=self._limits)
            try:
                run = await loop.run_in_executor(self._pool, call)
            finally:
                await threaded.finish()
        if threaded.deadline_passed:
            raise js_failure.timed_out(self._timeout_ms)
        return run

    def _result(self, run: QuickJsRun) -> str:
        if run.result is not None:
            return run.result
        max_memory_bytes = self._limits.max_memory_bytes
        if run.error is not None:
            kind, message = run.error.get("kind"), str(run.error.get("message"))
            detail = "\n".join(part for part in (message, run.error.get("stack")) if part)
            if kind == "syntax_error":
                raise js_failure.syntax_error(message, detail)
            if kind == "out_of_memory":
                raise js_failure.out_of_memory("memory", max_memory_bytes, detail)
            if kind in ("threw", "never_settled"):
                raise js_failure.threw(message, detail, RunOutcome(kind))
            raise js_failure.engine_failed(f"the JavaScript engine failed: {message}", detail)
        command = run.command
        match command.outcome:
            case Outcome.TIMED_OUT:
                raise js_failure.timed_out(self._timeout_ms)
            case Outcome.OUT_OF_MEMORY:
                raise js_failure.out_of_memory("memory", max_memory_bytes, command.detail)
            case Outcome.TRAPPED if "call stack exhausted" in command.detail:
                raise js_failure.threw(STACK_EXHAUSTED, command.detail)
        stderr = command.stderr.decode(errors="replace").strip()
        reason = stderr or (command.detail.strip().splitlines() or ["no detail"])[-1].strip()
        raise js_failure.engine_failed(
            f"the JavaScript engine failed ({command.outcome}): {reason}", command.detail or stderr
        )
