"""Replaying one recorded run: build the data plane's job, have a data plane run it, read the new
conversation back and diff it against the original.

The control plane never runs user code: it sends the recorded request (and, in `recorded`
mode for processors, the recorded outbound exchanges) with the target to a data plane
(`replay_client`), which runs it and records it as a conversation like any run, with
`replay_of` and `replay_mode`. The data plane answers once that conversation is in Redis,
so one `Ingester.catch_up` makes it readable here; the diff is `replay_diff`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control_plane.ingest import CatchUpFailed, Ingester
from control_plane.replay_client import DataPlaneClient
from control_plane.replay_diff import Run, conversation_diff
from control_plane.replay_source import processor_entry, recorded_run
from control_plane.replay_targets import ProcessorCodeTarget, ReplayTarget
from control_plane.storage import conversations as store
from control_plane.storage.database import Database
from shared.errors import Unavailable
from shared.redis import RETRY_AFTER_S

OUTBOUND_MODES = ("recorded", "live")


@dataclass(frozen=True)
class Replayed:
    conversation: store.Conversation
    items: list[store.StoredItem]
    diff: dict[str, Any]


class Replayer:
    def __init__(self, db: Database, ingester: Ingester, client: DataPlaneClient) -> None:
        self._db = db
        self._ingester = ingester
        self._client = client

    async def replay(
        self, original: Run, target: ReplayTarget, *, outbound: str, allow_truncated: bool
    ) -> Replayed:
        """Replay `original` against `target`; `outbound` is "recorded" or "live"."""
        conversation, items = original
        runs_code = isinstance(target, ProcessorCodeTarget)
        run = recorded_run(
            conversation,
            items,
            with_outbound=runs_code and outbound == "recorded",
            allow_truncated=allow_truncated,
        )
        job = {
            "replay_of": conversation.id,
            "outbound": outbound,
            "request": run.request,
            "recorded_outbound": run.exchanges,
            **target.job(processor_entry(conversation, run) if runs_code else None),
        }
        replay_id = await self._client.replay(job)
        replay = await self._stored(replay_id)
        return Replayed(replay[0], replay[1], conversation_diff(original, replay))

    async def _stored(self, conversation_id: str) -> Run:
        stored = await store.get_conversation(self._db, conversation_id)
        if stored is None:
            try:
                await self._ingester.catch_up()
            except CatchUpFailed as exc:
                raise Unavailable(
                    f"the replay ran as conversation {conversation_id}, which cannot be read now: {exc}",
                    headers={"Retry-After": RETRY_AFTER_S},
                ) from exc
            stored = await store.get_conversation(self._db, conversation_id)
        if stored is None:
            raise Unavailable(
                f"the replay ran as conversation {conversation_id}, which is not stored yet; "
                f"read it with GET /conversation/{conversation_id}"
            )
        return stored
