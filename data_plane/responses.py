"""Answering a run: the HTTP response, always with its conversation recorded first.

Invariant: every run's response carries `FH-Conversation-Id` and is built only
after `ConversationRecorder.record` has returned for that run's record.
"""

from __future__ import annotations

from starlette.responses import Response

from data_plane.audit import ConversationRecorder
from data_plane.conversation import Conversation
from data_plane.executors.guest_response import GuestResponse
from shared.errors import ServiceError, error_response

CONVERSATION_HEADER = "FH-Conversation-Id"


async def answer(
    recorder: ConversationRecorder, conversation: Conversation, guest: GuestResponse, *, duration_ms: float
) -> Response:
    record = conversation.finish(
        status=guest.status,
        headers=guest.headers,
        body=guest.body,
        outcome="completed",
        duration_ms=duration_ms,
    )
    await recorder.record(record)
    response = Response(content=guest.body, status_code=guest.status)
    response.raw_headers.extend(
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in guest.headers
    )
    response.raw_headers.append((CONVERSATION_HEADER.lower().encode(), conversation.id.encode()))
    return response


async def answer_error(
    recorder: ConversationRecorder,
    conversation: Conversation,
    error: ServiceError,
    *,
    outcome: str,
    detail: str | None = None,
    duration_ms: float | None = None,
) -> Response:
    response = error_response(error.status, error.message, error.headers)
    headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in response.raw_headers]
    record = conversation.finish(
        status=error.status,
        headers=headers,
        body=bytes(response.body),
        outcome=outcome,
        error=error.message,
        error_detail=detail or None,
        duration_ms=duration_ms,
    )
    await recorder.record(record)
    response.headers[CONVERSATION_HEADER] = conversation.id
    return response
