"""Answering a run: the HTTP response, always with its conversation recorded first.

Invariants:
- Every run's response carries `FH-Conversation-Id` and is returned only after
  `ConversationRecorder.record` has returned for that run's record.
- The response is built before the record is written and nothing after the write can
  fail, so a run is recorded once, with exactly the status, headers and body sent
  (a guest's headers were checked when its output was parsed: `GuestResponse`).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response

from data_plane.audit import ConversationRecorder
from data_plane.conversation import Conversation
from data_plane.executors.guest_response import GuestResponse
from shared.conversations import RunOutcome
from shared.errors import ServiceError, error_response

CONVERSATION_HEADER = "FH-Conversation-Id"
_CONVERSATION_HEADER = CONVERSATION_HEADER.lower().encode()


@dataclass(frozen=True)
class RunEnd:
    """How a run ended, whatever ran it: the guest's response, or the error to answer; its outcome,
    the guest internals for `error_detail`, and how long the guest ran (None: the whole run's time)."""

    response: GuestResponse | None
    error: ServiceError | None
    outcome: RunOutcome
    detail: str | None
    duration_ms: float | None


async def answer_run(recorder: ConversationRecorder, conversation: Conversation, end: RunEnd) -> Response:
    if end.error is not None:
        return await answer_error(
            recorder,
            conversation,
            end.error,
            outcome=end.outcome,
            detail=end.detail,
            duration_ms=end.duration_ms,
        )
    assert end.response is not None, "a run ends with a response or an error"
    return await answer(recorder, conversation, end.response, duration_ms=end.duration_ms)


async def answer(
    recorder: ConversationRecorder,
    conversation: Conversation,
    guest: GuestResponse,
    *,
    duration_ms: float | None,
) -> Response:
    response = Response(content=guest.body, status_code=guest.status)
    response.raw_headers.extend(
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in guest.headers
    )
    record = conversation.finish(
        status=guest.status,
        headers=guest.headers,
        body=guest.body,
        outcome=RunOutcome.COMPLETED,
        duration_ms=duration_ms,
    )
    await recorder.record(record)
    response.raw_headers.append((_CONVERSATION_HEADER, conversation.id.encode()))
    return response


async def answer_error(
    recorder: ConversationRecorder,
    conversation: Conversation,
    error: ServiceError,
    *,
    outcome: RunOutcome,
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
    response.raw_headers.append((_CONVERSATION_HEADER, conversation.id.encode()))
    return response
