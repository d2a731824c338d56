"""Keeping the conversation stream small and its consumer group clean, in one background loop.

Every `UPKEEP_INTERVAL_S` (or every claim period, if shorter) the upkeep:
- trims the entries every consumer has acknowledged (`XTRIM MINID`, below the oldest
  pending entry and never past the group's last-delivered id), so the stream holds only
  what is not stored yet; then, as a safety net, trims the oldest entries, read or not,
  while the stream is over `FFAAS_CONVERSATION_STREAM_MAX_BYTES`, counting and logging
  them as lost.

And every claim period (half of `FFAAS_INGEST_CLAIM_IDLE_MS`, at most 10 s) it:
- takes over entries pending longer than `FFAAS_INGEST_CLAIM_IDLE_MS` at any consumer
  and hands them to the writer;
- removes consumers with no pending entry idle longer than that (a control plane that is
  gone, or was renamed), logged. A paused control plane that comes back is simply a new
  consumer again: a consumer without pending entries holds nothing.

An error is logged, kept in `stats.last_error`, and the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from control_plane.conversation_stream import ConversationStream, Entry
from shared.timestamps import utc_now

log = logging.getLogger("ffaas.control_plane.stream_upkeep")

UPKEEP_INTERVAL_S = 1.0
MAX_CLAIM_PERIOD_S = 10.0


@dataclass
class UpkeepStats:
    claimed: int = 0
    """Entries taken over from consumers that left them idle."""
    consumers_removed: int = 0
    trimmed: int = 0
    """Acknowledged entries removed from the stream."""
    lost_to_byte_bound: int = 0
    """Entries the byte bound removed before they were acknowledged (at most: an entry another
    control plane acknowledged out of order counts too)."""
    last_error: str | None = None


class StreamUpkeep:
    def __init__(
        self,
        stream: ConversationStream,
        hand_over: Callable[[list[Entry]], Awaitable[Any]],
        *,
        claim_idle_ms: int,
        max_stream_bytes: int,
        batch: int,
    ) -> None:
        self._stream = stream
        self._hand_over = hand_over
        self._claim_idle_ms = claim_idle_ms
        self._claim_period_s = min(claim_idle_ms / 2000, MAX_CLAIM_PERIOD_S)
        self._max_stream_bytes = max_stream_bytes
        self._batch = batch
        self.stats = UpkeepStats()

    async def run(self, stop: asyncio.Event) -> None:
        """The loop; returns once `stop` is set."""
        next_claim = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() >= next_claim:
                    await self.take_over_idle()
                    await self.forget_gone_consumers()
                    next_claim = time.monotonic() + self._claim_period_s
                await self.trim()
            except Exception as exc:
                self.stats.last_error = f"{utc_now()} stream upkeep: {exc!r}"
                log.warning("conversation stream upkeep failed (retrying): %r", exc)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(UPKEEP_INTERVAL_S, self._claim_period_s))

    async def take_over_idle(self) -> None:
        async for entries in self._stream.claim_idle(self._claim_idle_ms, self._batch):
            self.stats.claimed += len(entries)
            log.info("took over %d conversation entries left pending by other consumers", len(entries))
            await self._hand_over(entries)

    async def forget_gone_consumers(self) -> None:
        removed = await self._stream.forget_gone_consumers(self._claim_idle_ms)
        if removed:
            self.stats.consumers_removed += len(removed)
            log.info(
                "removed consumer(s) %s from %s: no pending entries, idle over %d ms "
                "(FFAAS_INGEST_CLAIM_IDLE_MS)",
                ", ".join(removed),
                self._stream.group,
                self._claim_idle_ms,
            )

    async def trim(self) -> None:
        self.stats.trimmed += await self._stream.trim_acknowledged()
        lost = await self._stream.trim_to_bytes(self._max_stream_bytes)
        if lost:
            self.stats.lost_to_byte_bound += lost
            log.error(
                "the conversation stream was over %d bytes (FFAAS_CONVERSATION_STREAM_MAX_BYTES): "
                "removed its %d oldest entries before they were stored; those conversations are lost",
                self._max_stream_bytes,
                lost,
            )
