"""Outboxes no worker owns any more, adopted and written to Redis: the worker count changed.

Each worker of a data plane has its outbox directory (`outbox.outbox_directory`) named
after its plane id: FFAAS_PLANE_ID with one worker, FFAAS_PLANE_ID/<index> with several
(`Settings.for_worker`). A data plane started again with another worker count (1 -> 2,
4 -> 2, 2 -> 1) has no worker that opens the directories of the old count: records of
runs already answered, waiting for Redis. Every worker looks for them.

Invariants:
- The candidates are the directories of FFAAS_PLANE_ID and of FFAAS_PLANE_ID/<number> that
  are no current worker's, so adoption never takes the directory its owner is about to open.
- A candidate is opened as a `DiskOutbox`, which takes its lock (flock) or fails: one process
  at a time drains it, never while a live process holds it (a worker of the old count still
  stopping, or a sibling adopting it first); a locked one is tried again at the next scan.
- Its records go to Redis oldest first, through a `ConversationRecorder` of its own, as the
  worker's own outbox does (ids registered as held until written). Each record is written
  once, unless the adopter dies midway: then the next adopter writes the records of the
  unfinished segment again, and ingestion (by conversation id) stores them once.
- Drained, the directory is removed, still under its lock. Scans run at start and every
  `SCAN_INTERVAL_S`; adoptions run one after the other, in the background (`close` leaves
  what is not written on disk, for the next start).
- `start` claims (locks) the orphans there are and registers their records' ids as held
  before it returns (within FFAAS_RECORD_TIMEOUT_MS; if Redis does not answer, the
  drainer does it once Redis does), so a read of a run they hold, right after this worker
  serves, is told the run is on its way, never 404.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from urllib.parse import unquote

import redis.asyncio as aioredis

from data_plane.audit import ConversationRecorder
from data_plane.outbox import DiskOutbox, OutboxLocked, outbox_directory, outbox_root
from shared.keys import Keys

log = logging.getLogger("ffaas.outbox")

SCAN_INTERVAL_S = 10.0


def orphaned_outboxes(data_dir: Path, base_plane_id: str, worker_plane_ids: tuple[str, ...]) -> list[Path]:
    """The outbox directories of `base_plane_id` (alone, or `/<number>`) no current worker owns."""
    root = outbox_root(data_dir)
    if not root.is_dir():
        return []
    owned = {outbox_directory(data_dir, plane_id).name for plane_id in worker_plane_ids}
    sibling = re.compile(re.escape(base_plane_id) + r"(/\d+)?")
    return sorted(
        path
        for path in root.iterdir()
        if path.name not in owned and sibling.fullmatch(unquote(path.name)) and path.is_dir()
    )


class OutboxAdoption:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        data_dir: Path,
        base_plane_id: str,
        worker_plane_ids: tuple[str, ...],
        plane_id: str,
        max_bytes: int,
        stream_max_length: int,
        record_timeout_ms: int,
    ) -> None:
        """`plane_id`: this worker's, named as the holder of the adopted records' ids."""
        self._redis = redis
        self._keys = keys
        self._data_dir = data_dir
        self._base_plane_id = base_plane_id
        self._worker_plane_ids = worker_plane_ids
        self._plane_id = plane_id
        self._max_bytes = max_bytes
        self._stream_max_length = stream_max_length
        self._record_timeout_ms = record_timeout_ms
        self._task: asyncio.Task[None] | None = None
        self._claimed: list[tuple[Path, ConversationRecorder]] = []
        """Orphans locked and not drained yet, oldest claim first."""
        self._current: ConversationRecorder | None = None
        self.adopted = 0
        """Outbox directories drained and removed by this worker."""

    @property
    def held(self) -> int:
        """Records of the outboxes claimed or being adopted not written to Redis yet."""
        current = len(self._current.outbox) if self._current is not None else 0
        return current + sum(len(recorder.outbox) for _, recorder in self._claimed)

    async def start(self) -> None:
        """Claim the orphans there are and register their ids as held, then adopt in the background."""
        try:
            await self._claim_orphans()
        except OSError as exc:
            log.error("looking for outboxes left by other workers failed: %s", exc)
        for _, recorder in self._claimed:
            await recorder.register_held_now(self._record_timeout_ms / 1000)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ffaas-outbox-adoption")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while self._claimed:
            _, recorder = self._claimed.pop()
            await recorder.close(remove_if_empty=True)

    async def adopt_orphans(self) -> int:
        """One scan: drain and remove every orphaned outbox not locked; how many were."""
        await self._claim_orphans()
        adopted = 0
        while self._claimed:
            directory, recorder = self._claimed.pop(0)  # _adopt closes it, whatever happens
            adopted += await self._adopt(directory, recorder)
        return adopted

    async def _run(self) -> None:
        while True:
            try:
                await self.adopt_orphans()
            except OSError as exc:
                log.error("looking for outboxes left by other workers failed: %s", exc)
            await asyncio.sleep(SCAN_INTERVAL_S)

    async def _claim_orphans(self) -> None:
        """Lock every orphan not locked by a live process and not claimed here already."""
        claimed = {directory for directory, _ in self._claimed}
        for directory in orphaned_outboxes(self._data_dir, self._base_plane_id, self._worker_plane_ids):
            if directory in claimed:
                continue
            try:
                outbox = await asyncio.to_thread(DiskOutbox, directory, max_bytes=self._max_bytes)
            except OutboxLocked:
                continue  # a live process drains it: its owner still stopping, or a sibling first
            recorder = ConversationRecorder(
                self._redis,
                self._keys,
                outbox,
                plane_id=self._plane_id,
                stream_max_length=self._stream_max_length,
                record_timeout_ms=self._record_timeout_ms,
            )
            self._claimed.append((directory, recorder))

    async def _adopt(self, directory: Path, recorder: ConversationRecorder) -> bool:
        self._current = recorder
        log.info(
            "adopting the conversation outbox %s (plane %s, no worker of this data plane owns it): "
            "%d records to write to Redis",
            directory,
            unquote(directory.name),
            len(recorder.outbox),
        )
        drained = False
        try:
            await recorder.drained()
            drained = True
        finally:
            self._current = None
            await recorder.close(remove_if_empty=True)
        if drained:
            self.adopted += 1
            log.info("adopted conversation outbox %s written to Redis and removed", directory)
        return drained
