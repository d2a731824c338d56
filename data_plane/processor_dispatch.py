"""`ANY /processor/<id>/run` and `/run_with_prelude`: request -> processor -> response -> conversation.

Invariants as for endpoints (see `dispatch`): every request for a known
processor is a run with a conversation (`request_processor_id` set), answered
with `FH-Conversation-Id` only after its record is in Redis or the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import Scope

from data_plane.audit import ConversationRecorder
from data_plane.conversation import Conversation
from data_plane.executors.js import JsExecutor
from data_plane.executors.js_host import OutboundSender
from data_plane.incoming_request import IncomingRequest
from data_plane.registry import PreparedProcessor, Registry
from data_plane.responses import RunEnd
from data_plane.run_dispatch import RunDispatcher
from shared.errors import NotFound

ENTRY_POINTS = {"run": False, "run_with_prelude": True}


@dataclass(frozen=True)
class ProcessorRun:
    """What a processor run runs: the processor, its entry point, and where its outbound requests go
    (None: the network; a replay from the record answers them itself)."""

    processor: PreparedProcessor
    with_prelude: bool
    outbound: OutboundSender | None = None


class ProcessorDispatcher(RunDispatcher[ProcessorRun]):
    def __init__(
        self, registry: Registry, js_executor: JsExecutor, recorder: ConversationRecorder, **limits: int
    ) -> None:
        """`limits`: `max_request_bytes`, `max_captured_body_bytes`, `max_audit_items` (see
        `RunDispatcher`)."""
        super().__init__(registry, recorder, **limits)
        self._js = js_executor

    def find(self, scope: Scope) -> ProcessorRun:
        path = scope["path"]
        segments = path.strip("/").split("/")
        if len(segments) != 3 or segments[2] not in ENTRY_POINTS:
            raise NotFound(f"no route for {path}; processors run at /processor/<id>/run or /run_with_prelude")
        processor = self.registry.processor(segments[1])
        if processor is None:
            raise NotFound(f"processor {segments[1]} not found")
        return ProcessorRun(processor, ENTRY_POINTS[segments[2]])

    async def execute(
        self, target: ProcessorRun, incoming: IncomingRequest, conversation: Conversation
    ) -> RunEnd:
        run = await self._js.run(
            target.processor,
            incoming,
            conversation,
            with_prelude=target.with_prelude,
            outbound=target.outbound,
        )
        return RunEnd(run.response, run.error, run.outcome, run.detail, run.elapsed_ms)

    def conversation_for(self, target: ProcessorRun, incoming: IncomingRequest) -> Conversation:
        return Conversation(
            incoming,
            body_cap=self.body_cap,
            max_items=self.max_audit_items,
            request_processor_id=target.processor.processor_id,
            processor_version_id=target.processor.version_id or None,
        )
