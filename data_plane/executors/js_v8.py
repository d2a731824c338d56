"""Processors on `runtime: "v8"`: each run gets a fresh context in an isolate of an engine worker
process (`runtime.v8_engines`, `engines/v8/worker.js`), holding the prelude (`js_prelude.js`), the
processor's JavaScript and one call of `__ffaas_run`.  Its logs and outbound requests come back to
the run's `RunHost` on the event loop as they happen.

Invariants:
- At most FFAAS_V8_RUNS runs are in flight at once (each holds an isolate, up to its memory
  limit); up to FFAAS_V8_QUEUE more wait for one, each until its deadline; past that a run is
  answered 503 with Retry-After (`overloaded`).
- A run is answered by its deadline (FFAAS_RUN_TIMEOUT_MS): the worker stops it then; should the
  worker not answer within `GRACE_S` after that, the run is answered `timed_out` anyway and the
  worker is told to drop it.
- Every outbound request the run started is answered or cut off, recorded, before `evaluate` returns.
"""

from __future__ import annotations

import asyncio
from typing import Any

from data_plane.executors import js_failure
from data_plane.executors.js_failure import JsFailure
from data_plane.executors.js_host import RUN_ENDED, RunHost, answer_of
from data_plane.registry import PreparedProcessor
from data_plane.runtime.run_slots import RunSlots
from data_plane.runtime.v8_engines import (
    EngineGone,
    EngineRun,
    EngineUnavailable,
    V8Engines,
    isolate_limit_bytes,
)
from shared.conversations import RunOutcome
from shared.errors import GuestError

GRACE_S = 1.0
SETTINGS = "FFAAS_V8_RUNS, FFAAS_V8_QUEUE"


class V8Evaluator:
    def __init__(
        self, engines: V8Engines, *, timeout_ms: int, max_memory_bytes: int, max_runs: int, max_queued: int
    ) -> None:
        self._engines = engines
        self._timeout_ms = timeout_ms
        self._max_memory_bytes = max_memory_bytes
        self.slots = RunSlots(max_runs, max_queued, self._overloaded)

    async def evaluate(
        self, processor: PreparedProcessor, request_json: str, with_prelude: bool, host: RunHost
    ) -> str:
        """The JSON of `__ffaas_run`, or `JsFailure`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_ms / 1000
        async with self.slots.slot(deadline):
            left_ms = max(int((deadline - loop.time()) * 1000), 1)
            sent: dict[int, asyncio.Future[str]] = {}
            by_time = False
            try:
                async with asyncio.timeout_at(deadline + GRACE_S):
                    return await self._run(processor, request_json, with_prelude, host, left_ms, sent)
            except TimeoutError:
                by_time = True
                raise js_failure.timed_out(self._timeout_ms) from None
            except JsFailure as failure:
                by_time = failure.outcome is RunOutcome.TIMED_OUT
                raise
            finally:
                await _cut_off(host, sent, ended=not by_time)

    async def _run(
        self,
        processor: PreparedProcessor,
        request_json: str,
        with_prelude: bool,
        host: RunHost,
        timeout_ms: int,
        sent: dict[int, asyncio.Future[str]],
    ) -> str:
        try:
            code = (processor.code_hash, processor.source)
            max_log_bytes = host.log_budget.max_bytes
            async with self._engines.run(*code, request_json, with_prelude, timeout_ms, max_log_bytes) as run:
                while True:
                    message = await run.next()
                    kind = message["t"]
                    if kind == "log":
                        host.log(message["text"])
                    elif kind == "dispatch":
                        self._dispatch(run, host, sent, message["ticket"], message["json"])
                    elif kind == "done":
                        if not isinstance(message.get("result"), str):
                            error = GuestError("the processor's run did not produce a result")
                            raise JsFailure(error, RunOutcome.THREW)
                        return str(message["result"])
                    elif kind == "fail":
                        raise self._failure(message)
        except EngineUnavailable as exc:
            raise js_failure.engine_failed(str(exc), "", RunOutcome.RUNTIME_UNAVAILABLE) from None
        except EngineGone as exc:
            raise self._engine_failed(exc) from None

    def _dispatch(
        self, run: EngineRun, host: RunHost, sent: dict[int, asyncio.Future[str]], ticket: int, request: str
    ) -> None:
        """Record and send the request now; hand its answer to the run when it comes."""
        future = host.start_dispatch(request)
        sent[ticket] = future

        def answered(done: asyncio.Future[str]) -> None:
            if not run.over:
                run.answer(ticket, answer_of(done, cancelled_as=RUN_ENDED))

        future.add_done_callback(answered)

    def _failure(self, message: dict[str, Any]) -> JsFailure:
        kind, line = message["kind"], str(message.get("message") or "")
        stack = str(message.get("stack") or "")
        detail = stack or line
        match kind:
            case "timed_out":
                return js_failure.timed_out(self._timeout_ms)
            case "out_of_memory":
                return js_failure.out_of_memory("memory", isolate_limit_bytes(self._max_memory_bytes), detail)
            case "syntax_error":
                return js_failure.syntax_error(line, detail)
            case "threw":
                return js_failure.threw(line, detail)
        return js_failure.engine_failed(f"the JavaScript engine failed: {line}", detail)

    def _engine_failed(self, gone: EngineGone) -> JsFailure:
        """A run whose worker died: it may not have been this run's doing, so the message says what
        happened and the limits every run is held to."""
        limit = f"{_mib(self._max_memory_bytes)} (FFAAS_MAX_MEMORY_BYTES)"
        if gone.out_of_memory:
            why = f"a run in it reached its memory limit of {limit} in one allocation V8 cannot survive"
        else:
            why = f"runs are limited to {limit} and {self._timeout_ms} ms (FFAAS_RUN_TIMEOUT_MS)"
        reason = f"the JavaScript engine failed while the run was in it: {gone}; {why}; it was restarted"
        return js_failure.engine_failed(reason, str(gone), RunOutcome.ENGINE_FAILED)

    def _overloaded(self, why: str) -> JsFailure:
        return js_failure.overloaded("V8", self.slots.max_runs, why, SETTINGS)


async def _cut_off(host: RunHost, sent: dict[int, asyncio.Future[str]], *, ended: bool) -> None:
    """Cut off the run's requests still in flight (each records why: the run's end, or its time
    limit) and wait until they are recorded."""
    host.ended = ended
    for future in sent.values():
        future.cancel()
    await asyncio.gather(*sent.values(), return_exceptions=True)


def _mib(max_memory_bytes: int) -> str:
    return f"{isolate_limit_bytes(max_memory_bytes) / (1 << 20):.1f} MiB"
