"""Processors: the fh-http contract of SPEC.md ("JavaScript / TypeScript processors"), on either
runtime: `js_v8` (embedded V8) or `js_wasm` (quickjs-ng inside the WebAssembly sandbox).

Both evaluate the same prelude (`js_prelude.js`) and produce the same result JSON, which goes
through the same response rules (`js_response`).  Logs and outbound requests are recorded in the
conversation as they happen (`js_host`); outbound requests go through the `host.outbound_http`
capability (network policy, timeout, size cap) within the `host.outbound_limits` (count, in-flight,
hops).  A run that produced no result is answered as `js_failure` says, the same way on both
runtimes; one that failed after the hop limit refused one of its requests is part of a loop and is
answered 508 (`loop_detected`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from data_plane.conversation import Conversation
from data_plane.executors.guest_response import GuestResponse, InvalidGuestResponse
from data_plane.executors.js_failure import JsFailure
from data_plane.executors.js_host import OutboundSender, RunHost
from data_plane.executors.js_response import response_from_result
from data_plane.host.outbound_http import OutboundHttp
from data_plane.host.outbound_limits import OutboundLimits, incoming_hops
from data_plane.incoming_request import IncomingRequest
from data_plane.registry import PreparedProcessor
from shared.conversations import RunOutcome, captured_body, headers_payload
from shared.errors import GuestError, LoopDetected, ServiceError


class Evaluator(Protocol):
    async def evaluate(
        self, processor: PreparedProcessor, request_json: str, with_prelude: bool, host: RunHost
    ) -> str:
        """The JSON `__ffaas_run` produced, or raises `JsFailure`."""
        ...


@dataclass(frozen=True)
class JsRun:
    response: GuestResponse | None
    error: ServiceError | None
    outcome: RunOutcome
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
    def __init__(
        self,
        runtimes: Mapping[str, Evaluator],
        outbound: OutboundHttp,
        outbound_limits: OutboundLimits,
        *,
        max_log_bytes: int,
    ) -> None:
        """`runtimes`: the evaluator of each runtime name (`v8`, `wasm`)."""
        self._runtimes = runtimes
        self._outbound = outbound
        self._outbound_limits = outbound_limits
        self._max_log_bytes = max_log_bytes

    async def run(
        self,
        processor: PreparedProcessor,
        incoming: IncomingRequest,
        conversation: Conversation,
        *,
        with_prelude: bool,
        outbound: OutboundSender | None = None,
    ) -> JsRun:
        """`outbound`: where `fh.dispatch_request` goes instead of the network (a replay's record)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        limits = self._outbound_limits.for_run(incoming_hops(incoming.headers))
        host = RunHost(conversation, outbound or self._outbound, limits, self._max_log_bytes)
        try:
            evaluator = self._runtimes.get(processor.runtime)
            if evaluator is None:
                unknown = f"processor {processor.processor_id} has unknown runtime {processor.runtime!r}"
                raise JsFailure(GuestError(unknown), RunOutcome.UNSUPPORTED_RUNTIME)
            request_json = json.dumps(request_object(incoming))
            result = await evaluator.evaluate(processor, request_json, with_prelude, host)
            response = response_from_result(json.loads(result), incoming.body)
            return JsRun(response, None, RunOutcome.COMPLETED, None, (loop.time() - started) * 1000)
        except JsFailure as failure:
            error, outcome = failure.error, failure.outcome
            if host.loop_refused and outcome is not RunOutcome.OVERLOADED:
                error = LoopDetected(_loop_message(limits.hops, error.message))
                outcome = RunOutcome.LOOP_DETECTED
            return JsRun(None, error, outcome, failure.detail, (loop.time() - started) * 1000)
        except ServiceError as exc:  # the result broke the response rules
            detail = exc.detail if isinstance(exc, InvalidGuestResponse) else None
            elapsed_ms = (loop.time() - started) * 1000
            return JsRun(None, exc, RunOutcome.INVALID_RESPONSE, detail, elapsed_ms)


def _loop_message(hops: int, failure: str) -> str:
    return (
        f"loop detected: this run is hop {hops} of a chain of requests between processors and the hop "
        f"limit (FFAAS_MAX_HOPS) refused its next one; then {failure}"
    )
