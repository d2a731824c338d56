"""Processors on `runtime: "v8"`: each run gets a fresh V8 context (see `runtime.v8`) holding the
prelude (`js_prelude.js`), the processor's JavaScript and one call of `__ffaas_run`.  JavaScript
never runs on the event loop; its host calls (`RunHost`) come back to it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from py_mini_racer import JSEvalException, JSOOMException, JSParseException, JSPromiseError

from data_plane.executors import js_failure
from data_plane.executors.js_failure import JsFailure
from data_plane.executors.js_host import RunHost
from data_plane.registry import PreparedProcessor
from data_plane.runtime.v8 import Prepare, V8Context, V8Runtime
from shared.conversations import RunOutcome
from shared.errors import GuestError

PRELUDE = (Path(__file__).with_name("js_prelude.js")).read_text()


def preparation() -> Prepare:
    """What `V8Runtime` does to each context ahead of demand: expose the host functions (they reach
    the run through `context.host`, a `RunHost`) and evaluate the prelude."""

    async def prepare(context: V8Context) -> None:
        async def log(text: Any) -> None:
            context.host.log(text)

        async def dispatch(request_json: Any) -> str:
            return str(await context.host.dispatch(request_json))

        await context.expose("__ffaas_log", log)
        await context.expose("__ffaas_dispatch", dispatch)
        await context.evaluate(PRELUDE)

    return prepare


class V8Evaluator:
    def __init__(self, v8: V8Runtime, *, timeout_ms: int, max_memory_bytes: int) -> None:
        self._v8 = v8
        self._timeout_ms = timeout_ms
        self._max_memory_bytes = max_memory_bytes

    async def evaluate(
        self, processor: PreparedProcessor, request_json: str, with_prelude: bool, host: RunHost
    ) -> str:
        """The JSON of `__ffaas_run`, or `JsFailure`."""
        run = self._in_fresh_context(processor.source, request_json, with_prelude, host)
        try:
            result = await asyncio.wait_for(run, self._timeout_ms / 1000)
        except TimeoutError:
            raise js_failure.timed_out(self._timeout_ms) from None
        except JSOOMException as exc:
            raise js_failure.out_of_memory("heap", self._max_memory_bytes, str(exc)) from None
        except JSParseException as exc:
            raise js_failure.syntax_error(_error_line(str(exc)), str(exc)) from None
        except (JSEvalException, JSPromiseError) as exc:
            raise js_failure.threw(_error_line(str(exc)), str(exc)) from None
        if not isinstance(result, str):
            raise JsFailure(GuestError("the processor's run did not produce a result"), RunOutcome.THREW)
        return result

    async def _in_fresh_context(
        self, source: str, request_json: str, with_prelude: bool, host: RunHost
    ) -> Any:
        async with self._v8.fresh_context() as context:
            context.host = host
            call = f"__ffaas_run({request_json}, {json.dumps(with_prelude)})"
            # One evaluation for the code and the call (each costs a trip to V8's thread); the call
            # comes last, so line numbers in the processor's errors are its own.
            return await context.evaluate(f"{source}\n;{call}")


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
