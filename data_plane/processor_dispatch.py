"""`ANY /processor/<id>/run` and `/run_with_prelude`: request -> processor -> response -> conversation.

Invariants as for endpoints (see `dispatch`): every request for a known
processor is a run with a conversation (`request_processor_id` set), answered
with `FH-Conversation-Id` only after its record is in Redis.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from data_plane.audit import ConversationRecorder
from data_plane.conversation import Conversation
from data_plane.executors.js import JsExecutor
from data_plane.incoming_request import IncomingRequest
from data_plane.registry import PreparedProcessor, Registry
from data_plane.responses import answer, answer_error
from shared.errors import GuestError, NotFound, PayloadTooLarge, ServiceError, error_response
from shared.request_body import read_capped_body

log = logging.getLogger("ffaas.processor_dispatch")

ENTRY_POINTS = {"run": False, "run_with_prelude": True}


class ProcessorDispatcher:
    def __init__(
        self,
        registry: Registry,
        v8_executor: JsExecutor,
        recorder: ConversationRecorder,
        *,
        max_request_bytes: int,
        max_captured_body_bytes: int,
    ) -> None:
        self._registry = registry
        self._v8 = v8_executor
        self._recorder = recorder
        self._max_request_bytes = max_request_bytes
        self._body_cap = max_captured_body_bytes
        self._too_large = (
            f"request body exceeds the limit of {max_request_bytes} bytes (FFAAS_MAX_REQUEST_BYTES)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await self.handle(scope["path"], Request(scope, receive))
        except ServiceError as exc:
            response = error_response(exc.status, exc.message, exc.headers)
        except Exception:
            log.exception("unhandled error running %s", scope["path"])
            response = error_response(500, "internal error; see the server log")
        await response(scope, receive, send)

    async def handle(self, path: str, request: Request) -> Response:
        segments = path.strip("/").split("/")
        if len(segments) != 3 or segments[2] not in ENTRY_POINTS:
            raise NotFound(f"no route for {path}; processors run at /processor/<id>/run or /run_with_prelude")
        processor = self._registry.processor(segments[1])
        if processor is None:
            raise NotFound(f"processor {segments[1]} not found")
        try:
            body = await read_capped_body(request, self._max_request_bytes, self._too_large)
        except PayloadTooLarge as exc:
            conversation = self._conversation(processor, IncomingRequest.from_starlette(request, b""))
            return await answer_error(self._recorder, conversation, exc, outcome="request_too_large")
        incoming = IncomingRequest.from_starlette(request, body)
        conversation = self._conversation(processor, incoming)
        if processor.runtime != "v8":
            error = GuestError(
                f"processor {processor.processor_id} uses runtime {processor.runtime!r}, "
                "which this data plane does not run yet; use runtime 'v8'"
            )
            return await answer_error(self._recorder, conversation, error, outcome="unsupported_runtime")
        run = await self._v8.run(processor, incoming, conversation, with_prelude=ENTRY_POINTS[segments[2]])
        if run.error is not None:
            return await answer_error(
                self._recorder,
                conversation,
                run.error,
                outcome=run.outcome,
                detail=run.detail,
                duration_ms=run.elapsed_ms,
            )
        assert run.response is not None
        return await answer(self._recorder, conversation, run.response, duration_ms=run.elapsed_ms)

    def _conversation(self, processor: PreparedProcessor, incoming: IncomingRequest) -> Conversation:
        return Conversation(incoming, body_cap=self._body_cap, request_processor_id=processor.processor_id)
