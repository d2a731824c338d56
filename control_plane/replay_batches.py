"""Batch replays: many recorded runs of one endpoint or processor replayed against one target,
in the background, with a report.

A batch selects original runs only (not replays) of its endpoint or processor, newest first
(`limit`, and optionally `since` and `outcome`), and replays them oldest first. Its report:

    {"id", "state": "running" | "finished" | "interrupted", "created_at", "finished_at",
     "endpoint_id" | "processor_id", "target": {"deploy_id"} | {"processor_version_id"} |
     {"draft": {...}}, "outbound", "selection": {"limit", "since", "outcome"},
     "total", "done", "replayed", "same", "differ", "errors",
     "differs_in": {"status": n, "outcome": n, "headers": n, "body": n, "logs": n, "outbound": n},
     "runs": [{"original": id, "replay": id | null, "differs": bool | null, "differs_in": [...],
               "error": null | "why this run could not be replayed"}, ...]}

Invariants:
- Live traffic keeps its latency: every batch run holds one of FFAAS_REPLAY_CONCURRENCY
  slots, shared by all batches of this control plane, while its replay is on a data plane;
  at most FFAAS_REPLAY_MAX_BATCHES batches run at once (503 with Retry-After beyond).
- A run that cannot be replayed (a cut body, an original deleted by retention, a data plane
  error) gets its `error` and the batch goes on.
- Running batches live in this process's memory and are readable while they run; the
  report is stored in SQLite when the batch starts and when it ends (`storage.replay_batches`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from control_plane.replay import Replayer
from control_plane.replay_diff import PARTS
from control_plane.replay_targets import ReplayTarget
from control_plane.storage import conversations as conversation_store
from control_plane.storage import replay_batches as store
from control_plane.storage.database import Database
from shared.errors import NotFound, ServiceError, Unavailable
from shared.timestamps import utc_now

log = logging.getLogger("ffaas.control_plane.replay_batches")


@dataclass(frozen=True)
class Selection:
    limit: int
    since: str | None = None
    outcome: str | None = None


@dataclass
class BatchRun:
    original: str
    replay: str | None = None
    differs: bool | None = None
    differs_in: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.replay is not None or self.error is not None


@dataclass
class Batch:
    id: str
    created_at: str
    subject: dict[str, str]
    """{"endpoint_id": ...} or {"processor_id": ...}."""
    target: ReplayTarget
    outbound: str
    allow_truncated: bool
    selection: Selection
    runs: list[BatchRun]
    state: str = "running"
    finished_at: str | None = None

    def report(self) -> dict[str, Any]:
        runs = self.runs
        return {
            "id": self.id,
            "state": self.state,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "endpoint_id": self.subject.get("endpoint_id"),
            "processor_id": self.subject.get("processor_id"),
            "target": self.target.described(),
            "outbound": self.outbound,
            "selection": {
                "limit": self.selection.limit,
                "since": self.selection.since,
                "outcome": self.selection.outcome,
            },
            "total": len(runs),
            "done": sum(run.done for run in runs),
            "replayed": sum(run.replay is not None for run in runs),
            "same": sum(run.differs is False for run in runs),
            "differ": sum(run.differs is True for run in runs),
            "errors": sum(run.error is not None for run in runs),
            "differs_in": {part: sum(part in run.differs_in for run in runs) for part in PARTS},
            "runs": [vars(run).copy() for run in runs],
        }


class ReplayBatches:
    def __init__(
        self, db: Database, replayer: Replayer, *, concurrency: int, max_batches: int, keep: int
    ) -> None:
        self._db = db
        self._replayer = replayer
        self._slots = asyncio.Semaphore(concurrency)
        self._max_batches = max_batches
        self._keep = keep
        self._running: dict[str, Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.runs_in_flight = 0

    @property
    def running(self) -> int:
        return len(self._running)

    async def start(
        self,
        subject: dict[str, str],
        target: ReplayTarget,
        *,
        outbound: str,
        allow_truncated: bool,
        selection: Selection,
    ) -> dict[str, Any]:
        """Select the runs, store the batch, start it in the background; its first report."""
        if len(self._running) >= self._max_batches:
            raise Unavailable(
                f"{len(self._running)} batch replays are running, the most at once "
                "(FFAAS_REPLAY_MAX_BATCHES); start this one when one has finished",
                headers={"Retry-After": "5"},
            )
        originals = await conversation_store.list_conversations(
            self._db,
            limit=selection.limit,
            matching=conversation_store.ConversationFilter(
                endpoint_id=subject.get("endpoint_id"),
                processor_id=subject.get("processor_id"),
                is_replay=False,
                outcome=selection.outcome,
                since=selection.since,
            ),
        )
        runs = [BatchRun(conversation.id) for conversation in reversed(originals)]
        batch = Batch(
            str(uuid.uuid4()), utc_now(), subject, target, outbound, allow_truncated, selection, runs
        )
        await store.insert_batch(self._db, batch.report(), keep=self._keep)
        self._running[batch.id] = batch
        task = asyncio.create_task(self._run(batch), name=f"ffaas-replay-batch-{batch.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return batch.report()

    async def report(self, batch_id: str) -> dict[str, Any] | None:
        running = self._running.get(batch_id)
        if running is not None:
            return running.report()
        return await store.get_batch(self._db, batch_id)

    async def list(
        self, *, limit: int, endpoint_id: str | None = None, processor_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The newest `limit` batches' reports without their runs, newest first (running ones live)."""
        reports = await store.list_batches(
            self._db, limit=limit, endpoint_id=endpoint_id, processor_id=processor_id
        )
        for index, report in enumerate(reports):
            running = self._running.get(report["id"])
            if running is not None:
                reports[index] = {key: value for key, value in running.report().items() if key != "runs"}
        return reports

    async def close(self) -> None:
        """Stop running batches; they are stored as "interrupted"."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, batch: Batch) -> None:
        try:
            await asyncio.gather(*(self._replay(batch, run) for run in batch.runs))
            batch.state = "finished"
        except asyncio.CancelledError:
            batch.state = "interrupted"
            raise
        finally:
            batch.finished_at = utc_now()
            self._running.pop(batch.id, None)
            with contextlib.suppress(Exception):  # the batch is over either way; the log says why
                await asyncio.shield(store.update_batch(self._db, batch.report()))
            report = batch.report()
            log.info(
                "replay batch %s %s: %d run(s), %d replayed, %d differ, %d error(s)",
                batch.id,
                batch.state,
                report["total"],
                report["replayed"],
                report["differ"],
                report["errors"],
            )

    async def _replay(self, batch: Batch, run: BatchRun) -> None:
        async with self._slots:
            self.runs_in_flight += 1
            try:
                original = await conversation_store.get_conversation(self._db, run.original)
                if original is None:
                    raise NotFound(f"conversation {run.original} was deleted before it was replayed")
                replayed = await self._replayer.replay(
                    original, batch.target, outbound=batch.outbound, allow_truncated=batch.allow_truncated
                )
                run.replay = replayed.conversation.id
                run.differs = bool(replayed.diff["differs"])
                run.differs_in = list(replayed.diff["differs_in"])
            except ServiceError as exc:
                run.error = exc.message
            except Exception:
                log.exception("replaying %s in batch %s failed", run.original, batch.id)
                run.error = "internal error; see the control plane log"
            finally:
                self.runs_in_flight -= 1
