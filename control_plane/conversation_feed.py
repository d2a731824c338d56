"""The live feed of stored conversations: what `GET /conversation/stream` and the console follow.

Events come from SQLite, never from this process's memory: a client's position is a
cursor (a conversation's `seq`, see `storage/conversations.py`), and each step reads the
conversations stored after it. So a client resumes from any cursor without a gap or a
repeat, and it sees the runs every control plane ingests into the shared database.

`ConversationFeed` only says *when* to read again: it reads the one-row counter
`conversation_sequence` every `poll_ms` while clients are connected, and at once when this
control plane's ingester has stored something (`nudge`), and wakes the clients when it grew;
the poll is what shows runs that another control plane stored. Waking is a generation
event (replaced, then set), so no wake-up is lost between a client's read and its wait.

The number of connected clients is bounded (`max_clients`, FFAAS_STREAM_MAX_CLIENTS): a
request arriving when the bound is reached is refused with 503 and `Retry-After` (requests
arriving in the same instant may pass the check together).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from sse_starlette import ServerSentEvent

from control_plane.storage import conversations as store
from control_plane.storage.database import Database
from shared.errors import Unavailable

log = logging.getLogger("ffaas.control_plane.feed")

BATCH = 200
RETRY_AFTER_S = 5
Describe = Callable[[list[store.Conversation]], Awaitable[list[dict[str, Any]]]]


class ConversationFeed:
    def __init__(self, db: Database, *, poll_ms: int, max_clients: int) -> None:
        self._db = db
        self._poll_s = poll_ms / 1000
        self.max_clients = max_clients
        self.clients = 0
        self.last_seq = 0
        """The highest `seq` known to be stored."""
        self._grew = asyncio.Event()
        self._nudged = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll(), name="ffaas-conversation-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def refresh(self) -> int:
        """Read the last stored `seq` now (waking clients if it grew); it."""
        self._note(await store.last_stored_seq(self._db))
        return self.last_seq

    def nudge(self) -> None:
        """Something was stored here: read the counter now rather than at the next poll."""
        self._nudged.set()

    async def wait_beyond(self, seq: int) -> None:
        """Return once a conversation after `seq` is known to be stored."""
        while self.last_seq <= seq:
            await self._grew.wait()

    def check_room(self) -> None:
        """Refuse (503, `Retry-After`) a new client when `max_clients` are connected."""
        if self.clients >= self.max_clients:
            raise Unavailable(
                f"too many live streams: {self.max_clients} are connected (FFAAS_STREAM_MAX_CLIENTS)",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )

    @contextmanager
    def client(self) -> Iterator[None]:
        """Count one connected client while its stream runs."""
        self.clients += 1
        try:
            yield
        finally:
            self.clients -= 1

    def _note(self, seq: int) -> None:
        if seq > self.last_seq:
            self.last_seq = seq
            grew, self._grew = self._grew, asyncio.Event()
            grew.set()

    async def _poll(self) -> None:
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._nudged.wait(), self._poll_s)
            self._nudged.clear()
            if not self.clients:
                continue
            try:
                await self.refresh()
            except Exception as exc:  # a busy or closing database: the next tick tries again
                log.warning("reading the last stored conversation failed: %r", exc)


async def conversation_events(
    feed: ConversationFeed,
    db: Database,
    *,
    after: int,
    matching: store.ConversationFilter,
    describe: Describe,
) -> AsyncIterator[ServerSentEvent]:
    """One `conversation` event per stored conversation after `after` that matches, forever.

    Each event's id is the conversation's cursor; its data is `describe`'s JSON of it.
    """
    cursor = after
    while True:
        through = feed.last_seq
        while cursor < through:
            found = await store.conversations_after(
                db, after=cursor, through=through, limit=BATCH, matching=matching
            )
            for conversation, description in zip(found, await describe(found), strict=True):
                yield ServerSentEvent(
                    data=json.dumps(description, ensure_ascii=False, separators=(",", ":")),
                    event="conversation",
                    id=str(conversation.seq),
                )
            # Fewer than a batch: nothing else up to `through` matches.
            cursor = found[-1].seq if len(found) == BATCH else through
        await feed.wait_beyond(cursor)
