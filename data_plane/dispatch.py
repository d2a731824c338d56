"""`ANY /<endpoint-id>[/...]`: request -> module -> executor -> response -> conversation.

Invariants:
- Every request for a known endpoint is a run with a conversation, errors
  included; its response carries `FH-Conversation-Id` and is sent only after
  the conversation record is in Redis or the outbox (see `audit.ConversationRecorder`).
- Guest internals go to the conversation (`error_detail`), never into the response.
- How a WAGI run ended maps to one `RunOutcome`: the runtime's outcome, `invalid_response`
  when the module completed but its output is not a response that can be sent, and
  `unusable_module` when it could not run at all.
"""

from __future__ import annotations

from starlette.types import Scope

from data_plane.audit import ConversationRecorder
from data_plane.conversation import Conversation
from data_plane.executors.guest_response import InvalidGuestResponse
from data_plane.executors.wagi import WagiExecutor
from data_plane.incoming_request import IncomingRequest
from data_plane.registry import PreparedEndpoint, Registry
from data_plane.responses import RunEnd
from data_plane.run_dispatch import RunDispatcher
from data_plane.runtime.wasm import Outcome
from shared.conversations import RunOutcome
from shared.errors import NotFound


class EndpointDispatcher(RunDispatcher[PreparedEndpoint]):
    def __init__(
        self, registry: Registry, executor: WagiExecutor, recorder: ConversationRecorder, **limits: int
    ) -> None:
        """`limits`: `max_request_bytes`, `max_captured_body_bytes`, `max_audit_items` (see
        `RunDispatcher`)."""
        super().__init__(registry, recorder, **limits)
        self._executor = executor

    def find(self, scope: Scope) -> PreparedEndpoint:
        endpoint_id = scope["path"].split("/", 2)[1]
        endpoint = self.registry.endpoint(endpoint_id)
        if endpoint is None:
            raise NotFound(f"endpoint {endpoint_id} not found or has no deploy")
        return endpoint

    async def execute(
        self, endpoint: PreparedEndpoint, incoming: IncomingRequest, conversation: Conversation
    ) -> RunEnd:
        run = await self._executor.run(endpoint, incoming)
        result = run.result
        if result is None:
            return RunEnd(None, run.error, RunOutcome.UNUSABLE_MODULE, None, 0.0)
        truncated_at = self._executor.limits.max_stderr_bytes if result.stderr_truncated else None
        conversation.log_stderr(result.stderr, truncated_at=truncated_at)
        if run.error is None:
            return RunEnd(run.response, None, RunOutcome.COMPLETED, None, result.elapsed_ms)
        if result.outcome is Outcome.COMPLETED:  # it ran, but its output is not a response to send
            detail = run.error.detail if isinstance(run.error, InvalidGuestResponse) else None
            return RunEnd(None, run.error, RunOutcome.INVALID_RESPONSE, detail, result.elapsed_ms)
        return RunEnd(None, run.error, RunOutcome(result.outcome.value), result.detail, result.elapsed_ms)

    def conversation_for(self, endpoint: PreparedEndpoint, incoming: IncomingRequest) -> Conversation:
        return Conversation(
            incoming,
            body_cap=self.body_cap,
            max_items=self.max_audit_items,
            endpoint_id=endpoint.endpoint_id,
            deploy_id=endpoint.deploy_id,
            module_hash=endpoint.module_hash,
        )
