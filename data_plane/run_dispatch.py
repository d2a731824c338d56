"""What every run's dispatcher shares: a plain ASGI entry point, reading the request (capped body,
its conversation, the 413 when the body is too large, the 508 when it has made too many hops
between processors: see `host.outbound_limits`), and ending the run: executing it and answering,
once, for every kind of guest.

Invariants:
- Once a run's conversation exists, the run is answered with the one JSON error shape or the
  guest's response, always with `FH-Conversation-Id`, and recorded: an unexpected exception
  while executing or answering is answered 500 ("internal error"), recorded with outcome
  `error` (the exception in `error_detail`) and logged with its traceback.
- Before that (an unknown endpoint or processor), errors are answered without a conversation.

Dispatchers are plain ASGI apps that the data plane puts in front of Starlette,
skipping its router and middleware stack (~15% of a hello-world run's CPU), so
they turn errors into the one JSON error shape of `shared.errors` themselves.  They read the
request from the ASGI scope and `receive` directly, without Starlette's `Request`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Generic, TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from data_plane.audit import ConversationRecorder
from data_plane.conversation import Conversation
from data_plane.host.outbound_limits import incoming_hops, too_many_hops
from data_plane.incoming_request import IncomingRequest
from data_plane.registry import Registry
from data_plane.responses import RunEnd, answer_error, answer_run
from shared.conversations import RunOutcome
from shared.errors import LoopDetected, PayloadTooLarge, ServiceError, error_response
from shared.request_body import read_capped_asgi_body

log = logging.getLogger("ffaas.dispatch")

Target = TypeVar("Target")
"""What a request runs: a prepared endpoint or processor."""

UNEXPECTED = "internal error: the run failed unexpectedly; the data plane's log has the details"


class RunDispatcher(Generic[Target]):
    def __init__(
        self,
        registry: Registry,
        recorder: ConversationRecorder,
        *,
        max_request_bytes: int,
        max_captured_body_bytes: int,
        max_audit_items: int,
        max_hops: int,
    ) -> None:
        self.registry = registry
        self.recorder = recorder
        self.body_cap = max_captured_body_bytes
        self.max_audit_items = max_audit_items
        self._max_request_bytes = max_request_bytes
        self._max_hops = max_hops
        self._too_large = (
            f"request body exceeds the limit of {max_request_bytes} bytes (FFAAS_MAX_REQUEST_BYTES)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await self.handle(scope, receive)
        except ServiceError as exc:
            response = error_response(exc.status, exc.message, exc.headers)
        except Exception:
            log.exception("unhandled error running %s", scope["path"])
            response = error_response(500, "internal error; see the server log")
        await response(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive) -> Response:
        target = self.find(scope)
        incoming, conversation, refused = await self.read_request(
            scope, receive, partial(self.conversation_for, target)
        )
        if refused is not None:
            return refused
        return await self.run(target, incoming, conversation)

    async def run(self, target: Target, incoming: IncomingRequest, conversation: Conversation) -> Response:
        """Execute the run and answer it, recorded; anything unexpected is answered as outcome
        `error`.  Replays come in here too (`replay_runner`), with a target of their own."""
        try:
            end = await self.execute(target, incoming, conversation)
            return await answer_run(self.recorder, conversation, end)
        except Exception as exc:
            log.exception(
                "unexpected error in the run of conversation %s (%s)", conversation.id, incoming.path
            )
            return await answer_error(
                self.recorder,
                conversation,
                ServiceError(UNEXPECTED),
                outcome=RunOutcome.ERROR,
                detail=f"{type(exc).__name__}: {exc}",
            )

    def find(self, scope: Scope) -> Target:
        """What the request runs; raises `NotFound` (answered without a conversation)."""
        raise NotImplementedError

    def conversation_for(self, target: Target, incoming: IncomingRequest) -> Conversation:
        raise NotImplementedError

    async def execute(self, target: Target, incoming: IncomingRequest, conversation: Conversation) -> RunEnd:
        """Run the guest; how it ended.  Anything it raises is answered as outcome `error`."""
        raise NotImplementedError

    async def read_request(
        self, scope: Scope, receive: Receive, conversation_for: Callable[[IncomingRequest], Conversation]
    ) -> tuple[IncomingRequest, Conversation, Response | None]:
        """The request with its body and its conversation (from `conversation_for`), and None; or, for
        a body over FFAAS_MAX_REQUEST_BYTES, the 413 as the third item, answered and recorded (the
        conversation's request has no body); or for a request past FFAAS_MAX_HOPS, the 508."""
        try:
            body = await read_capped_asgi_body(scope, receive, self._max_request_bytes, self._too_large)
        except PayloadTooLarge as exc:
            incoming = IncomingRequest.from_scope(scope, b"")
            conversation = conversation_for(incoming)
            refused = await answer_error(
                self.recorder, conversation, exc, outcome=RunOutcome.REQUEST_TOO_LARGE
            )
            return incoming, conversation, refused
        incoming = IncomingRequest.from_scope(scope, body)
        conversation = conversation_for(incoming)
        loop = too_many_hops(incoming_hops(incoming.headers), self._max_hops)
        if loop is not None:
            refused = await answer_error(
                self.recorder, conversation, LoopDetected(loop), outcome=RunOutcome.LOOP_DETECTED
            )
            return incoming, conversation, refused
        return incoming, conversation, None
