"""Processors on embedded V8: the fh-http contract of SPEC.md ("JavaScript / TypeScript processors").

Each run gets a fresh V8 context (see `runtime.v8`) holding the prelude
(`js_prelude.js`), the processor's JavaScript and one call of `__ffaas_run`.
Logs and outbound requests are recorded in the conversation as they happen;
outbound requests go through the `host.outbound_http` capability (network
policy, timeout, size cap).  Guest failures become `ServiceError`s whose
messages hold the processor's own error line; stacks go to `error_detail`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from py_mini_racer import JSEvalException, JSOOMException, JSParseException, JSPromiseError

from data_plane.conversation import Conversation
from data_plane.executors.guest_response import GuestResponse
from data_plane.executors.js_response import response_from_result
from data_plane.host.outbound_http import OutboundError, OutboundHttp
from data_plane.incoming_request import IncomingRequest
from data_plane.registry import PreparedProcessor
from data_plane.runtime.v8 import Prepare, V8Context, V8Runtime
from shared.conversations import captured_body, headers_payload
from shared.errors import GuestError, GuestTimeout, ServiceError

PRELUDE_TEMPLATE = (Path(__file__).with_name("js_prelude.js")).read_text()
MIB = 1 << 20


@dataclass(frozen=True)
class JsLimits:
    timeout_ms: int
    max_heap_bytes: int
    max_log_bytes: int


@dataclass(frozen=True)
class JsRun:
    response: GuestResponse | None
    error: ServiceError | None
    outcome: str
    detail: str | None
    elapsed_ms: float


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
    def __init__(self, v8: V8Runtime, outbound: OutboundHttp, limits: JsLimits) -> None:
        self._v8 = v8
        self._outbound = outbound
        self.limits = limits

    @staticmethod
    def preparation(max_log_bytes: int) -> Prepare:
        """What `V8Runtime` does to each context ahead of demand: expose the host functions (they
        reach the run through `context.host`, a `_RunHost`) and evaluate the prelude."""
        prelude = PRELUDE_TEMPLATE.replace("__FFAAS_MAX_LOG_BYTES__", str(max_log_bytes))

        async def prepare(context: V8Context) -> None:
            async def log(text: Any) -> None:
                context.host.log(text)

            async def dispatch(request_json: Any) -> str:
                return str(await context.host.dispatch(request_json))

            await context.expose("__ffaas_log", log)
            await context.expose("__ffaas_dispatch", dispatch)
            await context.evaluate(prelude)

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
        try:
            result = await asyncio.wait_for(
                self._evaluate(processor, incoming, conversation, with_prelude),
                self.limits.timeout_ms / 1000,
            )
            response = response_from_result(json.loads(result), incoming.body)
            return JsRun(response, None, "completed", None, (loop.time() - started) * 1000)
        except Exception as exc:  # every guest failure, translated at this boundary
            error, outcome, detail = self._translate(exc)
            return JsRun(None, error, outcome, detail, (loop.time() - started) * 1000)

    async def _evaluate(
        self,
        processor: PreparedProcessor,
        incoming: IncomingRequest,
        conversation: Conversation,
        with_prelude: bool,
    ) -> str:
        async with self._v8.fresh_context() as context:
            context.host = _RunHost(conversation, self._outbound)
            call = f"__ffaas_run({json.dumps(request_object(incoming))}, {json.dumps(with_prelude)})"
            # One evaluation for the code and the call (each costs a trip to V8's thread); the call
            # comes last, so line numbers in the processor's errors are its own.
            result = await context.evaluate(f"{processor.source}\n;{call}")
        if not isinstance(result, str):
            raise GuestError("the processor's run did not produce a result")
        return result

    def _translate(self, exc: Exception) -> tuple[ServiceError, str, str | None]:
        limits = self.limits
        if isinstance(exc, TimeoutError):
            return (
                GuestTimeout(f"run exceeded {limits.timeout_ms} ms (FFAAS_RUN_TIMEOUT_MS)"),
                "timed_out",
                None,
            )
        if isinstance(exc, JSOOMException):
            heap_mib = limits.max_heap_bytes / MIB
            message = f"run exceeded its heap limit of {heap_mib:.1f} MiB (FFAAS_MAX_MEMORY_BYTES)"
            return GuestError(message), "out_of_memory", str(exc)
        if isinstance(exc, JSParseException):
            return (
                GuestError(f"the processor's code does not parse: {_error_line(str(exc))}"),
                "syntax_error",
                str(exc),
            )
        if isinstance(exc, JSEvalException | JSPromiseError):
            return GuestError(f"the processor failed: {_error_line(str(exc))}"), "threw", str(exc)
        if isinstance(exc, ServiceError):
            return exc, "invalid_response", None
        raise exc


def _header_pairs(headers: Any) -> list[tuple[str, str]]:
    """Headers as JS code gives them: `{name: value}`, `{name: [values]}` or `[[name, value], ...]`."""
    if isinstance(headers, dict):
        items = [
            (name, value)
            for name, values in headers.items()
            for value in (values if isinstance(values, list) else [values])
        ]
    elif isinstance(headers, list):
        items = [(pair[0], pair[1]) for pair in headers if isinstance(pair, list) and len(pair) == 2]
    else:
        items = []
    return [(str(name), str(value)) for name, value in items]


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


class _RunHost:
    """The host functions of one run: logs and outbound requests, recorded in its conversation."""

    def __init__(self, conversation: Conversation, outbound: OutboundHttp) -> None:
        self._conversation = conversation
        self._outbound = outbound
        self._requests = itertools.count(1)

    def log(self, text: Any) -> None:
        self._conversation.log(str(text))

    async def dispatch(self, request_json: Any) -> str:
        request = json.loads(str(request_json))
        url, method = request["url"], request["method"].upper()
        headers = _header_pairs(request.get("headers"))
        body = b"" if request.get("body") is None else str(request["body"]).encode()
        conversation = self._conversation
        item = conversation.outbound_request(
            inc=next(self._requests), method=method, url=url, headers=headers, body=body
        )
        try:
            answer = await self._outbound.send(url, method=method, headers=headers, body=body or None)
        except OutboundError as exc:
            conversation.outbound_failure(item, str(exc))
            return json.dumps({"error": str(exc)})
        conversation.outbound_response(item, status=answer.status, headers=answer.headers, body=answer.body)
        response = {
            "code": answer.status,
            "headers": headers_payload(answer.headers),
            "body": captured_body(answer.body, len(answer.body))["body"],
        }
        return json.dumps({"response": response})
