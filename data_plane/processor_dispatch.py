"""`ANY /processor/<id>/run` and `/run_with_prelude`: request -> processor -> response -> conversation.

Invariants as for endpoints (see `dispatch`): every request for a known
processor is a run with a conversation (`request_processor_id` set), answered
with `FH-Conversation-Id` only after its record is in Redis.
"""

from __future__ import annotations

from functools import partial

from starlette.requests import Request
from starlette.responses import Response

from data_plane.audit import ConversationRecorder
from data_plane.conversation import Conversation
from data_plane.executors.js import JsExecutor
from data_plane.executors.js_host import OutboundSender
from data_plane.incoming_request import IncomingRequest
from data_plane.registry import PreparedProcessor, Registry
from data_plane.responses import answer, answer_error
from data_plane.run_dispatch import RunDispatcher
from shared.errors import NotFound

ENTRY_POINTS = {"run": False, "run_with_prelude": True}


class ProcessorDispatcher(RunDispatcher):
    def __init__(
        self, registry: Registry, js_executor: JsExecutor, recorder: ConversationRecorder, **limits: int
    ) -> None:
        """`limits`: `max_request_bytes` and `max_captured_body_bytes` (see `RunDispatcher`)."""
        super().__init__(registry, recorder, **limits)
        self._js = js_executor

    async def handle(self, request: Request) -> Response:
        path = request.scope["path"]
        segments = path.strip("/").split("/")
        if len(segments) != 3 or segments[2] not in ENTRY_POINTS:
            raise NotFound(f"no route for {path}; processors run at /processor/<id>/run or /run_with_prelude")
        processor = self.registry.processor(segments[1])
        if processor is None:
            raise NotFound(f"processor {segments[1]} not found")
        conversation_for = partial(self._conversation, processor)
        incoming, conversation, refused = await self.read_request(request, conversation_for)
        if refused is not None:
            return refused
        return await self.run(processor, incoming, conversation, with_prelude=ENTRY_POINTS[segments[2]])

    async def run(
        self,
        processor: PreparedProcessor,
        incoming: IncomingRequest,
        conversation: Conversation,
        *,
        with_prelude: bool,
        outbound: OutboundSender | None = None,
    ) -> Response:
        """Run `processor` on `incoming`; record `conversation` and answer. `outbound` answers its
        outbound requests instead of the network (a replay from the record)."""
        run = await self._js.run(
            processor, incoming, conversation, with_prelude=with_prelude, outbound=outbound
        )
        if run.error is not None:
            return await answer_error(
                self.recorder,
                conversation,
                run.error,
                outcome=run.outcome,
                detail=run.detail,
                duration_ms=run.elapsed_ms,
            )
        assert run.response is not None
        return await answer(self.recorder, conversation, run.response, duration_ms=run.elapsed_ms)

    def _conversation(self, processor: PreparedProcessor, incoming: IncomingRequest) -> Conversation:
        return Conversation(
            incoming,
            body_cap=self.body_cap,
            request_processor_id=processor.processor_id,
            processor_version_id=processor.version_id or None,
        )
