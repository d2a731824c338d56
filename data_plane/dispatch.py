"""`ANY /<endpoint-id>[/...]`: request -> module -> executor -> response -> conversation.

Invariants:
- Every request for a known endpoint is a run with a conversation, errors
  included; its response carries `FH-Conversation-Id` and is sent only after
  the conversation record is in Redis (see `audit.ConversationRecorder`).
- Guest internals go to the conversation (`error_detail`), never into the response.
"""

from __future__ import annotations

from functools import partial

from starlette.requests import Request
from starlette.responses import Response

from data_plane.audit import ConversationRecorder
from data_plane.conversation import Conversation
from data_plane.executors.wagi import WagiExecutor
from data_plane.incoming_request import IncomingRequest
from data_plane.registry import PreparedEndpoint, Registry
from data_plane.responses import answer, answer_error
from data_plane.run_dispatch import RunDispatcher
from shared.errors import NotFound


class EndpointDispatcher(RunDispatcher):
    def __init__(
        self, registry: Registry, executor: WagiExecutor, recorder: ConversationRecorder, **limits: int
    ) -> None:
        """`limits`: `max_request_bytes` and `max_captured_body_bytes` (see `RunDispatcher`)."""
        super().__init__(registry, recorder, **limits)
        self._executor = executor

    async def handle(self, request: Request) -> Response:
        endpoint_id = request.scope["path"].split("/", 2)[1]
        endpoint = self.registry.endpoint(endpoint_id)
        if endpoint is None:
            raise NotFound(f"endpoint {endpoint_id} not found or has no deploy")
        conversation_for = partial(self._conversation, endpoint)
        incoming, conversation, refused = await self.read_request(request, conversation_for)
        if refused is not None:
            return refused
        return await self.run(endpoint, incoming, conversation)

    async def run(
        self, endpoint: PreparedEndpoint, incoming: IncomingRequest, conversation: Conversation
    ) -> Response:
        """Run `endpoint`'s module on `incoming`; record `conversation` and answer (replays too)."""
        run = await self._executor.run(endpoint, incoming)
        result = run.result
        if result is not None:
            truncated_at = self._executor.limits.max_stderr_bytes if result.stderr_truncated else None
            conversation.log_stderr(result.stderr, truncated_at=truncated_at)
        duration_ms = result.elapsed_ms if result is not None else 0.0
        if run.error is not None:
            outcome = result.outcome.value if result is not None else "unusable_module"
            if result is not None and outcome == "completed":
                outcome = "invalid_response"
            detail = result.detail if result is not None else None
            return await answer_error(
                self.recorder,
                conversation,
                run.error,
                outcome=outcome,
                detail=detail,
                duration_ms=duration_ms,
            )
        assert run.response is not None
        return await answer(self.recorder, conversation, run.response, duration_ms=duration_ms)

    def _conversation(self, endpoint: PreparedEndpoint, incoming: IncomingRequest) -> Conversation:
        return Conversation(
            incoming,
            body_cap=self.body_cap,
            endpoint_id=endpoint.endpoint_id,
            deploy_id=endpoint.deploy_id,
            module_hash=endpoint.module_hash,
        )
