"""Outbound requests of a replay in `recorded` mode, answered from the original run's record.

`RecordedOutbound` stands where `OutboundHttp` stands for a real run (both are a
`js_host.OutboundSender`), so the run records its outbound request and response items, and
the processor sees answers and errors, exactly as in a real run.

Invariants:
- Nothing leaves the machine: no socket is opened, whatever the processor asks for.
- A request is matched by method and URL (exactly as the processor wrote it): the recorded
  exchanges with that method and URL answer it in their recorded order, each at most once.
- A request with no recorded exchange left is refused with an `OutboundError` (the prelude
  rejects the processor's promise with an Error it can catch; the refusal is recorded as the
  request's response item). An exchange the original run got no answer for fails the same
  way, with the original's reason.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from data_plane.host.outbound_http import OutboundError, OutboundResponse


@dataclass(frozen=True)
class RecordedExchange:
    """One outbound request of the original run and what came back: a response, or an error."""

    method: str
    url: str
    response: OutboundResponse | None
    error: str | None


class RecordedOutbound:
    def __init__(self, exchanges: Iterable[RecordedExchange]) -> None:
        self._unanswered: dict[tuple[str, str], deque[RecordedExchange]] = {}
        for exchange in exchanges:
            self._unanswered.setdefault((exchange.method, exchange.url), deque()).append(exchange)

    async def send(
        self, url: str, *, method: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> OutboundResponse:
        waiting = self._unanswered.get((method.upper(), url))
        if not waiting:
            raise OutboundError(
                f"replay: no recorded response for {method.upper()} {url} (the original run made no "
                'such request, or fewer of them); with outbound "recorded" nothing is sent'
            )
        exchange = waiting.popleft()
        if exchange.response is None:
            raise OutboundError(f"replay: the original run got no response either: {exchange.error}")
        return exchange.response
