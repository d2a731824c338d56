"""The host side of a processor run: what `fh.log`/`console.log` and `fh.dispatch_request` do.

`RunHost` records into the run's conversation and lives on the event loop.  V8 calls it there
directly; a run in the wasm sandbox executes in steps on worker threads (or a first step on the
event-loop thread) and reaches it through `ThreadedHost` (or `InlineAttemptHost`).

Invariants:
- The conversation is only ever changed on the event-loop thread, and its items are in the
  order the processor made the calls (logs and outbound requests interleaved as they happened):
  a request item is recorded when the processor makes the call, before it waits for a slot.
- At most `max_log_bytes` (UTF-8) of log text is recorded per run, then one notice naming
  FFAAS_MAX_LOG_BYTES; later lines are dropped where they are produced, before any thread hop.
- Outbound requests obey the run's `RunOutbound` (count, in-flight slots, hop count): a refused
  one is never sent, and the processor gets an Error it can catch naming the limit and setting.
- Every recorded outbound request item gets its response item: the answer, or the reason there is
  none (refused, failed, or cut off by the end of the run or its time limit).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

from data_plane.conversation import Conversation
from data_plane.host.outbound_http import OutboundError, OutboundResponse
from data_plane.host.outbound_limits import RunOutbound
from shared.conversations import captured_body, headers_payload

TIME_LIMIT_REACHED = "the run reached its time limit (FFAAS_RUN_TIMEOUT_MS) before the answer came"
RUN_ENDED = "the run ended before the answer came"


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

    def __init__(
        self, conversation: Conversation, outbound: OutboundSender, limits: RunOutbound, max_log_bytes: int
    ) -> None:
        self.conversation = conversation
        self.log_budget = LogBudget(max_log_bytes)
        self.limits = limits
        self._outbound = outbound
        self.loop_refused = False
        """Set when the hop limit refused a request: the run is part of a loop."""
        self.ended = False
        """Set once the run is over: a request still in flight is cut off by its end, not its time."""

    def log(self, text: Any) -> None:
        admitted = self.log_budget.admit(str(text))
        if admitted is not None:
            self.conversation.log(admitted)

    async def dispatch(self, request_json: Any) -> str:
        """Send `{url, method, headers, body}`; answers `{"response": {code, headers, body}}` or
        `{"error": why}` (the prelude turns that into a rejected promise)."""
        return await self.start_dispatch(request_json)

    def start_dispatch(self, request_json: Any) -> asyncio.Future[str]:
        """Record the request now (in call order) and send it; the future's result is the answer
        JSON, as `dispatch` says.  Cancelling the future cuts the request off, recorded."""
        request = json.loads(str(request_json))
        url, method = str(request["url"]), str(request["method"]).upper()
        headers = self.limits.headers(_header_pairs(request.get("headers")))
        body = b"" if request.get("body") is None else str(request["body"]).encode()
        refusal = self.limits.refusal()
        if refusal is not None:
            self.loop_refused = self.loop_refused or refusal.loop
            message = f"request to {url} {refusal.message}"
            if refusal.record:
                item = self._record_request(url, method, headers, body)
                self.conversation.outbound_failure(item, message)
            refused: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            refused.set_result(json.dumps({"error": message}))
            return refused
        item = self._record_request(url, method, headers, body)
        return asyncio.ensure_future(self._send(item, url, method, headers, body))

    def _record_request(self, url: str, method: str, headers: list[tuple[str, str]], body: bytes) -> Any:
        return self.conversation.outbound_request(
            inc=self.limits.made, method=method, url=url, headers=headers, body=body
        )

    async def _send(
        self, item: Any, url: str, method: str, headers: list[tuple[str, str]], body: bytes
    ) -> str:
        conversation = self.conversation
        try:
            async with self.limits.slot():
                answer = await self._outbound.send(url, method=method, headers=headers, body=body or None)
        except OutboundError as exc:
            conversation.outbound_failure(item, str(exc))
            return json.dumps({"error": str(exc)})
        except asyncio.CancelledError:
            conversation.outbound_failure(item, RUN_ENDED if self.ended else TIME_LIMIT_REACHED)
            raise
        conversation.outbound_response(item, status=answer.status, headers=answer.headers, body=answer.body)
        response = {
            "code": answer.status,
            "headers": headers_payload(answer.headers),
            "body": captured_body(answer.body, len(answer.body))["body"],
        }
        return json.dumps({"response": response})


class ThreadedHost:
    """The host of a wasm run's steps (`quickjs_wasm.JsHost`), which execute on worker threads.

    Log lines wait on the step's thread and reach the conversation in one go, ahead of the next
    outbound request and after the step (`flush`), so a chatty processor costs the event loop
    nothing per line.  A dispatch returns at once: the request is recorded and started on the
    event loop, and its answer is handed out by `answers`, which the run awaits on the loop
    between steps, holding no thread.  `finish` (on the loop, after the run) cuts off what is
    still in flight, recorded, and waits until that is in the conversation.
    """

    def __init__(self, host: RunHost, loop: asyncio.AbstractEventLoop) -> None:
        self._host = host
        self._loop = loop
        self._pending_logs: list[str] = []
        self._sent: dict[int, asyncio.Future[str]] = {}

    def log(self, text: str) -> None:
        admitted = self._host.log_budget.admit(text)
        if admitted is not None:
            self._pending_logs.append(admitted)

    def dispatch(self, ticket: int, request_json: str) -> None:
        logs, self._pending_logs = self._pending_logs, []
        self._loop.call_soon_threadsafe(self.start, ticket, request_json, logs)

    def start(self, ticket: int, request_json: str, logs: list[str] | None = None) -> None:
        """On the loop: record `logs`, then record and send the request."""
        self._record(logs or [])
        self._sent[ticket] = self._host.start_dispatch(request_json)

    def flush(self) -> None:
        """On the loop, after a step: record the logs it left."""
        logs, self._pending_logs = self._pending_logs, []
        self._record(logs)

    async def answers(self, timeout_s: float) -> list[tuple[int, str]]:
        """The `(ticket, answer JSON)` of requests that were answered, at least one unless
        `timeout_s` passed first (then none)."""
        if timeout_s > 0 and not any(sent.done() for sent in self._sent.values()):
            await asyncio.wait(self._sent.values(), timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        done = [ticket for ticket, sent in self._sent.items() if sent.done()]
        return [(ticket, answer_of(self._sent.pop(ticket))) for ticket in done]

    async def finish(self) -> None:
        for sent in self._sent.values():
            sent.cancel()
        await asyncio.gather(*self._sent.values(), return_exceptions=True)
        self._sent.clear()
        self.flush()

    def _record(self, logs: list[str]) -> None:
        for text in logs:
            self._host.conversation.log(text)


class InlineAttemptHost:
    """The host of a first step attempted on the event-loop thread (`quickjs_wasm.JsHost`).

    Until the attempt is known to stand, it has no effect outside itself, so that it can be thrown
    away (say, when the inline budget interrupted it) and the run made again on the worker pool:
    log lines and requests are only kept, in the order they were made.  `commit` makes them the
    run's: the logs go to the conversation and the requests are sent, through `ThreadedHost.start`.
    """

    def __init__(self, max_log_bytes: int) -> None:
        self._budget = LogBudget(max_log_bytes)
        self._calls: list[tuple[str, int, str]] = []

    def log(self, text: str) -> None:
        admitted = self._budget.admit(text)
        if admitted is not None:
            self._calls.append(("log", 0, admitted))

    def dispatch(self, ticket: int, request_json: str) -> None:
        self._calls.append(("dispatch", ticket, request_json))

    def commit(self, host: RunHost, threaded: ThreadedHost) -> None:
        """Make the attempt the run's (on the loop): its logs counted by the run's budget."""
        for kind, ticket, text in self._calls:
            if kind == "log":
                host.log(text)
            else:
                threaded.start(ticket, text)
        self._calls = []


def answer_of(sent: asyncio.Future[str], *, cancelled_as: str = TIME_LIMIT_REACHED) -> str:
    """A finished dispatch as the processor sees it; a failure becomes an error answer (a cancelled
    one `cancelled_as`: the time limit, or the run's end)."""
    if sent.cancelled():
        return json.dumps({"error": cancelled_as})
    if sent.exception() is not None:
        return json.dumps({"error": f"the request could not be sent: {sent.exception()}"})
    return sent.result()


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
