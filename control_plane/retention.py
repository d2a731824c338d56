"""Conversation retention: delete the oldest conversations beyond an age and a count.

Settings: FFAAS_CONVERSATION_RETENTION_HOURS (older conversations go; 0 keeps them
forever) and FFAAS_MAX_CONVERSATIONS (only the newest this many stay; 0: no limit),
applied once at start and every FFAAS_RETENTION_INTERVAL_S.

Invariants:
- "Oldest" is by (created_at, id), the listing order; a conversation's audit items go
  with it (ON DELETE CASCADE).
- Deletion runs in batches of `batch` conversations, one short transaction each, with
  the event loop free between batches: the database is never held for long.
- Errors are logged and the next pass tries again; the task never dies. Shutdown sets
  an event and the task ends after its current batch.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from datetime import UTC, datetime, timedelta

from control_plane.storage import conversations as store
from control_plane.storage.database import Database
from shared.timestamps import format_timestamp

log = logging.getLogger("ffaas.control_plane.retention")

BATCH = 500


class Retention:
    def __init__(
        self,
        db: Database,
        *,
        retention_hours: int,
        max_conversations: int,
        interval_s: float,
        batch: int = BATCH,
    ) -> None:
        self._db = db
        self._retention_hours = retention_hours
        self._max_conversations = max_conversations
        self._interval_s = interval_s
        self._batch = batch
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ffaas-retention")

    async def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._task is None:
            return
        done, _ = await asyncio.wait({self._task}, timeout=timeout_s)
        if not done:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=timeout_s)

    async def run_once(self, now: datetime | None = None) -> int:
        """Apply both limits once; how many conversations were deleted."""
        deleted = 0
        if self._retention_hours > 0:
            moment = now or datetime.now(UTC)
            cutoff = format_timestamp(moment - timedelta(hours=self._retention_hours))
            while not self._stop.is_set():
                removed = await store.delete_created_before(self._db, cutoff, self._batch)
                deleted += removed
                if removed < self._batch:
                    break
                await asyncio.sleep(0)
        if self._max_conversations > 0:
            excess = await store.count_conversations(self._db) - self._max_conversations
            while excess > 0 and not self._stop.is_set():
                removed = await store.delete_oldest(self._db, min(self._batch, excess))
                if removed == 0:
                    break
                deleted += removed
                excess -= removed
                await asyncio.sleep(0)
        if deleted:
            log.info("retention deleted %d conversation(s)", deleted)
        return deleted

    async def _run(self) -> None:
        if self._retention_hours == 0 and self._max_conversations == 0:
            return
        while not self._stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("conversation retention failed; trying again in %.0f s", self._interval_s)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval_s)
