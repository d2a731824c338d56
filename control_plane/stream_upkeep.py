"""Keeping the conversation stream small and its consumer group clean, in one background loop.

Every `UPKEEP_INTERVAL_S` (or every claim period, if shorter) the upkeep:
- hands the writer the entries pending at this control plane's own consumer, idle over
  `ORPHAN_IDLE_MS`, that no task holds (not in the writer's `held`): orphans, delivered
  by a read whose answer never arrived (Redis killed after running it, a catch-up cut off
  by its deadline). Only the claim timeout would free them otherwise. Every entry a read
  returns is held before the reader next yields, so a pending entry not held and idle
  that long belongs to nobody; handing one over twice anyway stores it once;
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
from collections.abc import Awaitable, Callable, Collection
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from control_plane.conversation_stream import ConversationStream, Entry
from shared.timestamps import utc_now

log = logging.getLogger("ffaas.control_plane.stream_upkeep")

UPKEEP_INTERVAL_S = 1.0
MAX_CLAIM_PERIOD_S = 10.0
ORPHAN_IDLE_MS = 1000


@dataclass
class UpkeepStats:
    claimed: int = 0
    """Entries taken over from consumers that left them idle."""
    orphans: int = 0
    """Entries pending at this consumer that no task held, handed to the writer."""
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
        held: Collection[bytes],
        claim_idle_ms: int,
        max_stream_bytes: int,
        batch: int,
    ) -> None:
        self._stream = stream
        self._hand_over = hand_over
        self._held = held
        """The ids the writer holds (handed over, not finished): a live view."""
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
                await self.take_up_orphans()
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

    async def take_up_orphans(self) -> None:
        async for ids in self._stream.own_pending_ids(ORPHAN_IDLE_MS, self._batch):
            orphans = [entry_id for entry_id in ids if entry_id not in self._held]
            if orphans:
                self.stats.orphans += len(orphans)
                log.warning(
                    "%d conversation entries were pending here with no task holding them (a read whose "
                    "answer was lost); storing them now",
                    len(orphans),
                )
                await self._hand_over(await self._stream.fetch(orphans))

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
