"""The host side of a processor run: what `fh.log`/`console.log` and `fh.dispatch_request` do.

`RunHost` records into the run's conversation and lives on the event loop.  V8 calls it there
directly; a run in the wasm sandbox runs on a worker thread and reaches it through `ThreadedHost`.

Invariants:
- The conversation is only ever changed on the event-loop thread, and its items are in the
  order the processor made the calls (logs and outbound requests interleaved as they happened).
- At most `max_log_bytes` (UTF-8) of log text is recorded per run, then one notice naming
  FFAAS_MAX_LOG_BYTES; later lines are dropped where they are produced, before any thread hop.
- Every outbound request item gets its response item: the answer, or the reason there is none
  (refused by policy, failed, or cut off by the run's time limit).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import time
from functools import partial
from typing import Any, Protocol

from data_plane.conversation import Conversation
from data_plane.host.outbound_http import OutboundError, OutboundResponse
from shared.conversations import captured_body, headers_payload

TIME_LIMIT_REACHED = "the run reached its time limit (FFAAS_RUN_TIMEOUT_MS) before the answer came"


class LogBudget:
    """Counts one run's log bytes; `admit` gives what to record for a line: the line, the cut
    notice (once), or None.  Used from one thread at a time."""

    def __init__(self, max_bytes: int) -> None:
        self._left = max_bytes
        self.max_bytes = max_bytes
        self._cut = False

    def admit(self, text: str) -> str | None:
        if self._cut:
            return None
        self._left -= len(text.encode(errors="replace"))
        if self._left >= 0:
            return text
        self._cut = True
        return f"[ffaas] logs cut at {self.max_bytes} bytes (FFAAS_MAX_LOG_BYTES)"


class OutboundSender(Protocol):
    """Where a run's outbound requests go: `OutboundHttp` (the network), or a replay's record
    (`replay_outbound.RecordedOutbound`). Raises `OutboundError` when there is no answer."""

    async def send(
        self, url: str, *, method: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> OutboundResponse: ...


class RunHost:
    """The host functions of one run, on the event loop: logs and outbound requests, recorded."""

    def __init__(self, conversation: Conversation, outbound: OutboundSender, max_log_bytes: int) -> None:
        self.conversation = conversation
        self.log_budget = LogBudget(max_log_bytes)
        self._outbound = outbound
        self._requests = itertools.count(1)

    def log(self, text: Any) -> None:
        admitted = self.log_budget.admit(str(text))
        if admitted is not None:
            self.conversation.log(admitted)

    async def dispatch(self, request_json: Any) -> str:
        """Send `{url, method, headers, body}`; answers `{"response": {code, headers, body}}` or
        `{"error": why}` (the prelude turns that into a rejected promise)."""
        request = json.loads(str(request_json))
        url, method = request["url"], request["method"].upper()
        headers = _header_pairs(request.get("headers"))
        body = b"" if request.get("body") is None else str(request["body"]).encode()
        conversation = self.conversation
        item = conversation.outbound_request(
            inc=next(self._requests), method=method, url=url, headers=headers, body=body
        )
        try:
            answer = await self._outbound.send(url, method=method, headers=headers, body=body or None)
        except OutboundError as exc:
            conversation.outbound_failure(item, str(exc))
            return json.dumps({"error": str(exc)})
        except asyncio.CancelledError:
            conversation.outbound_failure(item, TIME_LIMIT_REACHED)
            raise
        conversation.outbound_response(item, status=answer.status, headers=answer.headers, body=answer.body)
        response = {
            "code": answer.status,
            "headers": headers_payload(answer.headers),
            "body": captured_body(answer.body, len(answer.body))["body"],
        }
        return json.dumps({"response": response})


class ThreadedHost:
    """A `RunHost` for a run on a worker thread (`quickjs_wasm.JsHost`).

    Log lines wait on the run's thread and reach the conversation in one go, ahead of the next
    outbound request and at the end of the run, so a chatty processor costs the event loop
    nothing per line.  A dispatch blocks the run's thread while the event loop sends it, at most
    until the run's deadline; `finish` (on the loop, after the run) cancels a dispatch the
    deadline cut off and waits until its failure is recorded.
    """

    def __init__(self, host: RunHost, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        self._host = host
        self._loop = loop
        self._deadline = deadline
        self._pending_logs: list[str] = []
        self._dispatches: list[asyncio.Task[str]] = []
        self.deadline_passed = False
        """Set when a dispatch was cut off by the deadline: the run counts as timed out."""

    def log(self, text: str) -> None:
        admitted = self._host.log_budget.admit(text)
        if admitted is not None:
            self._pending_logs.append(admitted)

    def dispatch(self, request_json: str) -> str:
        logs, self._pending_logs = self._pending_logs, []
        answer: concurrent.futures.Future[str] = concurrent.futures.Future()

        def start() -> None:
            self._record(logs)
            task = self._loop.create_task(self._host.dispatch(request_json))
            self._dispatches.append(task)
            task.add_done_callback(partial(_pass_on, answer))

        self._loop.call_soon_threadsafe(start)
        try:
            return answer.result(timeout=max(self._deadline - time.monotonic(), 0))
        except TimeoutError:
            self.deadline_passed = True
            return json.dumps({"error": TIME_LIMIT_REACHED})

    async def finish(self) -> None:
        for task in self._dispatches:
            task.cancel()
        await asyncio.gather(*self._dispatches, return_exceptions=True)
        logs, self._pending_logs = self._pending_logs, []
        self._record(logs)

    def _record(self, logs: list[str]) -> None:
        for text in logs:
            self._host.conversation.log(text)


class InlineAttemptHost:
    """The host of a first attempt on the event-loop thread (`quickjs_wasm.JsHost`).

    Such an attempt must have no effect outside itself, so that it can be thrown away and the run
    made again on the worker pool: log lines are only kept (`record` adds them to the conversation
    once the attempt is the run), and a dispatch is refused, noted in `wanted_dispatch`, and never
    sent.
    """

    def __init__(self, max_log_bytes: int) -> None:
        self._budget = LogBudget(max_log_bytes)
        self._logs: list[str] = []
        self.wanted_dispatch = False

    def log(self, text: str) -> None:
        admitted = self._budget.admit(text)
        if admitted is not None:
            self._logs.append(admitted)

    def dispatch(self, request_json: str) -> str:
        self.wanted_dispatch = True
        return json.dumps({"error": "not sent: this attempt is run again on the worker pool"})

    def record(self, host: RunHost) -> None:
        """Make the attempt's logs the run's: into the conversation, and counted by its budget."""
        for text in self._logs:
            host.log(text)


def _pass_on(answer: concurrent.futures.Future[str], task: asyncio.Task[str]) -> None:
    """Hand a finished dispatch to the waiting run thread; a failure becomes an error answer."""
    if task.cancelled():
        answer.set_result(json.dumps({"error": TIME_LIMIT_REACHED}))
    elif task.exception() is not None:
        answer.set_result(json.dumps({"error": f"the request could not be sent: {task.exception()}"}))
    else:
        answer.set_result(task.result())


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
