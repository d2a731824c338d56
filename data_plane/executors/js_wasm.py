"""Processors on `runtime: "wasm"`: each run is a fresh instance of the ffaas-js engine (quickjs-ng
compiled to WebAssembly, `runtime.quickjs_wasm`, with the prelude built in), under the endpoints'
limits.

A run goes in steps (`QuickJsSession`): the first runs main() until it is over or waits for the
answers of outbound requests; each later step hands in the answers that came and runs on.  Between
steps the run waits on the event loop and holds no thread, so processors waiting on slow upstreams
never starve endpoints (or other processors) of worker threads, and the requests a processor starts
together (`Promise.all`) are in flight together.  What a waiting run holds is its instance, so
`max_runs` (FFAAS_WASM_PROCESSOR_RUNS) bounds the runs alive at once; as many more may queue for a
slot, each until its deadline; past that a run is answered 503 with Retry-After (`overloaded`).

Where steps happen, as for endpoints (see `wagi`, `runtime.inline_runs`): the first step of a
processor not known to be slow is tried on the event-loop thread within FFAAS_INLINE_BUDGET_MS,
which saves the thread hop.  That attempt has no effect until it stands (`InlineAttemptHost`: its
requests and logs are only kept, then sent and recorded once the step ended within the budget);
one the budget interrupted is thrown away and the run made again from scratch on the worker pool
(admitted by `FreshRunLimit`), where that processor's runs go from then on, as they do once its
inline steps take too long on average.  Later steps always run on the pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from functools import partial

from data_plane.executors import js_failure
from data_plane.executors.js_failure import STACK_EXHAUSTED, JsFailure
from data_plane.executors.js_host import InlineAttemptHost, RunHost, ThreadedHost
from data_plane.registry import PreparedProcessor
from data_plane.runtime.fresh_runs import FreshRunLimit
from data_plane.runtime.inline_runs import InlineRuns
from data_plane.runtime.quickjs_wasm import (
    EngineUnavailable,
    JsHost,
    QuickJsRun,
    QuickJsSession,
    QuickJsWasm,
)
from data_plane.runtime.run_slots import RunSlots
from data_plane.runtime.wasm import Outcome, RunLimits
from shared.conversations import RunOutcome

QuickJsLoader = Callable[[], Awaitable[QuickJsWasm]]
"""Gives the loaded engine, or raises `EngineUnavailable` saying why runtime "wasm" cannot run."""
RUNS_SETTING = "FFAAS_WASM_PROCESSOR_RUNS"


class WasmEvaluator:
    def __init__(
        self,
        quickjs: QuickJsLoader,
        pool: ThreadPoolExecutor,
        fresh_runs: FreshRunLimit,
        inline: InlineRuns,
        *,
        timeout_ms: int,
        max_memory_bytes: int,
        max_runs: int,
    ) -> None:
        self._quickjs = quickjs
        self.pool = pool
        self.fresh_runs = fresh_runs
        self.inline = inline
        self._timeout_ms = timeout_ms
        self.max_runs = max_runs
        self.slots = RunSlots(max_runs, max_runs, self._overloaded)
        """Runs alive (executing a step or waiting for answers) and queued, for `/status`."""
        # The engine's memory holds the result too, so the result can never outgrow the memory limit.
        self.limits = RunLimits(
            timeout_ms=timeout_ms,
            max_memory_bytes=max_memory_bytes,
            max_stdout_bytes=max_memory_bytes,
            max_stderr_bytes=4096,
        )
        self.inline_limits = replace(self.limits, timeout_ms=min(inline.budget_ms, timeout_ms))

    async def evaluate(
        self, processor: PreparedProcessor, request_json: str, with_prelude: bool, host: RunHost
    ) -> str:
        """The JSON of `__ffaas_run`, or `JsFailure`."""
        try:
            engine = await self._quickjs()
        except EngineUnavailable as exc:
            raise js_failure.engine_failed(str(exc), "", RunOutcome.RUNTIME_UNAVAILABLE) from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_ms / 1000
        async with self.slots.slot(deadline):
            run = _WasmRun(self, engine, processor, request_json, with_prelude, host, deadline)
            try:
                session = await run.begin()
                await run.until_over(session)
                ended = None if run.timed_out else session.result()
            finally:
                await run.close()
        if ended is None:
            raise js_failure.timed_out(self._timeout_ms)
        return self._result(ended)

    def _overloaded(self, why: str) -> JsFailure:
        return js_failure.overloaded("wasm", self.max_runs, why, RUNS_SETTING)

    def _result(self, run: QuickJsRun) -> str:
        if run.result is not None:
            return run.result
        max_memory_bytes = self.limits.max_memory_bytes
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


class _WasmRun:
    """One run's steps, its host on the loop, and the session it must close."""

    def __init__(
        self,
        evaluator: WasmEvaluator,
        engine: QuickJsWasm,
        processor: PreparedProcessor,
        request_json: str,
        with_prelude: bool,
        host: RunHost,
        deadline: float,
    ) -> None:
        self._evaluator = evaluator
        self._engine = engine
        self._processor = processor
        self._request_json = request_json
        self._with_prelude = with_prelude
        self._host = host
        self._deadline = deadline
        self._loop = asyncio.get_running_loop()
        self._threaded = ThreadedHost(host, self._loop)
        self._session: QuickJsSession | None = None
        self._abandoned = False
        self.timed_out = False

    async def begin(self) -> QuickJsSession:
        """The session after its first step: inline if it may and the attempt stands, else on the pool."""
        evaluator, inline = self._evaluator, self._evaluator.inline
        key = "js:" + self._processor.code_hash
        if inline.admit(key):
            attempt = InlineAttemptHost(self._host.log_budget.max_bytes)
            started = inline.clock()
            session = self._begun(attempt, evaluator.inline_limits.timeout_ms)
            # Interrupted by the inline budget, unless that is the run's whole time limit.
            interrupted = session.timed_out and evaluator.limits.timeout_ms > inline.budget_ms
            inline.ran_inline(key, inline.clock() - started, interrupted=interrupted)
            if not interrupted:
                self._session = session
                attempt.commit(self._host, self._threaded)
                return session
            session.close()
            inline.moved()
        self._session = await self._on_pool(partial(self._begun, self._threaded, self._left_ms()), None)
        return self._session

    async def until_over(self, session: QuickJsSession) -> None:
        """Hand in answers as they come until the run is over, or its deadline passed."""
        while session.waiting:
            answers = await self._threaded.answers(self._deadline - self._loop.time())
            if not answers:
                self.timed_out = True
                return
            await self._on_pool(partial(_deliver, session, self._threaded, answers, self._left_ms()), session)

    async def close(self) -> None:
        """Cut off what is still in flight (recorded), then release the instance."""
        cut_by_time = self.timed_out or (self._session is not None and self._session.timed_out)
        self._host.ended = not cut_by_time
        await self._threaded.finish()
        if self._session is not None and not self._abandoned:
            self._session.close()

    def _begun(self, host: JsHost, timeout_ms: int) -> QuickJsSession:
        """A new session after its first step, made on this thread."""
        processor, limits = self._processor, self._evaluator.limits
        session = self._engine.session(
            processor.source, self._request_json, with_prelude=self._with_prelude, limits=limits
        )
        try:
            session.begin(host, timeout_ms=timeout_ms)
        except BaseException:
            session.close()
            raise
        return session

    async def _on_pool(
        self, step: Callable[[], QuickJsSession], session: QuickJsSession | None
    ) -> QuickJsSession:
        """`step()` on a worker thread, admitted as a fresh run.  A step cannot be stopped midway
        (it ends by its deadline), so if this run is cancelled meanwhile, the step's session is
        closed by the thread once the step ended."""
        async with self._evaluator.fresh_runs.slot():
            future = self._evaluator.pool.submit(step)
            try:
                stepped = await asyncio.wrap_future(future)
            except asyncio.CancelledError:
                self._abandoned = True
                future.add_done_callback(partial(_close_after, session))
                raise
        self._threaded.flush()
        return stepped

    def _left_ms(self) -> int:
        return max(int((self._deadline - self._loop.time()) * 1000), 1)


def _deliver(
    session: QuickJsSession, host: JsHost, answers: list[tuple[int, str]], timeout_ms: int
) -> QuickJsSession:
    session.deliver(host, answers, timeout_ms=timeout_ms)
    return session


def _close_after(session: QuickJsSession | None, step: Future[QuickJsSession]) -> None:
    """Close the session of an abandoned step: the one it was given, or the one it made."""
    if session is None and not step.cancelled() and step.exception() is None:
        session = step.result()
    if session is not None:
        session.close()
