"""The conversation stream as the control plane uses it: a consumer group, read, settled and trimmed.

`ConversationStream` holds every Redis command the ingest sends about `Keys.conversations`
and `Keys.dead_letters`. It keeps nothing but names, so any task may call it.

Invariants:
- Reads go through the consumer group `Keys.ingest_group` as `consumer`, the control plane's
  stable id (`FFAAS_CONTROL_PLANE_ID`), so a restarted control plane finds its own pending
  entries. A command that meets a missing group (the stream was deleted) creates it and
  runs once more.
- `settle` parks the unreadable entries in the dead-letter stream and acknowledges the
  whole batch in one MULTI: an entry is acknowledged only once it is stored or parked.
- `trim_acknowledged` removes exactly what the group has acknowledged: every entry below
  the oldest one pending at any consumer, and never one past the group's last-delivered
  id (those are unread). The ingest group is the stream's only group.
- `trim_to_bytes` is the safety net: past `max_bytes` the oldest entries go, read or not.
- `forget_gone_consumers` removes, in one Lua script (so no consumer can read between the
  check and the removal), consumers with no pending entry that have been idle long.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgpack
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shared.keys import Keys
from shared.timestamps import utc_now

log = logging.getLogger("ffaas.control_plane.conversation_stream")

T = TypeVar("T")
BYTE_TRIM_TARGET = 0.9
"""The byte bound trims to this share of `max_bytes`, so it does not trim again at every check."""

_FORGET_GONE_CONSUMERS = """
local removed = {}
for _, fields in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local consumer = {}
  for i = 1, #fields, 2 do consumer[fields[i]] = fields[i + 1] end
  if consumer['name'] ~= ARGV[2] and consumer['pending'] == 0
      and consumer['idle'] > tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], consumer['name'])
    table.insert(removed, consumer['name'])
  end
end
return removed
"""


@dataclass(frozen=True)
class Entry:
    id: bytes
    fields: dict[bytes, bytes] | None
    """None when the id is still pending but the entry itself was trimmed from the stream."""


class ConversationStream:
    def __init__(self, redis: aioredis.Redis, keys: Keys, consumer: str) -> None:
        self._redis = redis
        self.stream = keys.conversations
        self.group = keys.ingest_group
        self.dead_letters = keys.dead_letters
        self.consumer = consumer
        self._forget_gone = redis.register_script(_FORGET_GONE_CONSUMERS)

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            log.info("created consumer group %s on %s", self.group, self.stream)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(
        self,
        start: bytes | str,
        count: int,
        *,
        block_ms: int | None = None,
        client: aioredis.Redis | None = None,
    ) -> list[Entry]:
        """XREADGROUP from `start`: ">" for entries no consumer has read, an id for this
        consumer's own pending entries after it. `client`: a connection of its own, for a
        blocking read."""
        redis = client or self._redis
        response = await self._in_group(
            redis.xreadgroup, self.group, self.consumer, {self.stream: start}, count=count, block=block_ms
        )
        return [
            _entry(entry_id, fields) for entries in _stream_entries(response) for entry_id, fields in entries
        ]

    async def last_id(self) -> bytes | None:
        """The id of the stream's newest entry; None if it is empty."""
        newest = await self._redis.xrevrange(self.stream, count=1)
        return _raw(newest[0][0]) if newest else None

    async def pending_ids(self, count: int) -> AsyncIterator[list[bytes]]:
        """The ids pending at any consumer of the group, oldest first, `count` at a time."""
        start: bytes | str = "-"
        while True:
            page = await self._in_group(
                self._redis.xpending_range, self.stream, self.group, min=start, max="+", count=count
            )
            if not page:
                return
            ids = [_raw(pending["message_id"]) for pending in page]
            yield ids
            if len(page) < count:
                return
            start = b"(" + ids[-1]

    async def own_pending_ids(self, min_idle_ms: int, count: int) -> AsyncIterator[list[bytes]]:
        """The ids pending at this consumer for over `min_idle_ms`, oldest first, `count` at a time."""
        start: bytes | str = "-"
        while True:
            page = await self._in_group(
                self._redis.xpending_range,
                self.stream,
                self.group,
                min=start,
                max="+",
                count=count,
                consumername=self.consumer,
                idle=min_idle_ms,
            )
            if not page:
                return
            ids = [_raw(pending["message_id"]) for pending in page]
            yield ids
            if len(page) < count:
                return
            start = b"(" + ids[-1]

    async def fetch(self, ids: list[bytes]) -> list[Entry]:
        """The entries `ids` as they are in the stream (fields None for one trimmed away)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xrange(self.stream, entry_id, entry_id, count=1)
            found = await pipe.execute()
        return [
            _entry(entry_id, hits[0][1] if hits else None) for entry_id, hits in zip(ids, found, strict=True)
        ]

    async def claim_idle(self, min_idle_ms: int, count: int) -> AsyncIterator[list[Entry]]:
        """Take over entries pending longer than `min_idle_ms` at any consumer, `count` at a time.
        Ids whose entry was trimmed come with fields None (XAUTOCLAIM drops them from the group)."""
        start: Any = "0-0"
        while True:
            response = await self._in_group(
                self._redis.xautoclaim,
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=min_idle_ms,
                start_id=start,
                count=count,
            )
            start, claimed = response[0], response[1]
            trimmed = response[2] if len(response) > 2 else []
            entries = [_entry(entry_id, fields) for entry_id, fields in claimed if entry_id is not None]
            entries += [Entry(entry_id, None) for entry_id in trimmed]
            if entries:
                yield entries
            if id_key(start) == (0, 0):
                return

    async def settle(
        self, ids: list[bytes], parked: list[tuple[Entry, str]], dead_letter_max_length: int
    ) -> None:
        """Park `parked` (entry, reason) in the dead-letter stream and acknowledge `ids`, atomically."""
        if not ids:
            return
        parked_at = utc_now()
        async with self._redis.pipeline(transaction=True) as pipe:
            for entry, reason in parked:
                letter: dict[Any, Any] = {
                    "source": self.stream,
                    "source_id": entry.id,
                    "reason": reason,
                    "parked_at": parked_at,
                    "entry": msgpack.packb(entry.fields or {}),
                }
                pipe.xadd(self.dead_letters, letter, maxlen=dead_letter_max_length, approximate=True)
            pipe.xack(self.stream, self.group, *ids)
            await pipe.execute()

    async def forget_gone_consumers(self, idle_ms: int) -> list[str]:
        """Remove the group's consumers (other than this one) with no pending entry idle over `idle_ms`."""
        removed = await self._in_group(
            self._forget_gone, keys=[self.stream], args=[self.group, self.consumer, idle_ms]
        )
        return [name.decode() if isinstance(name, bytes) else str(name) for name in removed]

    async def trim_acknowledged(self) -> int:
        """Remove the entries every consumer has acknowledged; how many went."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xinfo_groups(self.stream)
            pipe.xpending(self.stream, self.group)
            try:
                groups, pending = await pipe.execute()
            except ResponseError:
                return 0  # no stream or no group yet: nothing was acknowledged
        group = next((found for found in groups if _text(found["name"]) == self.group), None)
        if group is None:
            return 0
        last_delivered = id_key(group["last-delivered-id"])
        # The oldest pending entry stays; with none pending, everything delivered was acknowledged.
        below = id_key(pending["min"]) if pending["pending"] else (last_delivered[0], last_delivered[1] + 1)
        if below <= (0, 1):
            return 0
        return int(await self._redis.xtrim(self.stream, minid=f"{below[0]}-{below[1]}", approximate=False))

    async def trim_to_bytes(self, max_bytes: int) -> int:
        """Past `max_bytes`, remove the oldest entries, read or not, down to 90% of it; how many went."""
        used = await self._redis.memory_usage(self.stream)
        if used is None or used <= max_bytes:
            return 0
        length = int(await self._redis.xlen(self.stream))
        keep = int(length * max_bytes * BYTE_TRIM_TARGET / used)
        return int(await self._redis.xtrim(self.stream, maxlen=keep, approximate=False))

    async def status(self) -> dict[str, Any]:
        """The stream's length, bytes, pending and unread counts, parked entries, Redis's used memory."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xlen(self.stream)
            pipe.memory_usage(self.stream)
            pipe.xpending(self.stream, self.group)
            pipe.xinfo_groups(self.stream)
            pipe.xlen(self.dead_letters)
            pipe.info("memory")
            length, used, pending, groups, dead_letters, memory = await pipe.execute(raise_on_error=False)
        group: dict[str, Any] = (
            {}
            if isinstance(groups, Exception)
            else next((found for found in groups if _text(found["name"]) == self.group), {})
        )
        return {
            "conversation_stream": {
                "length": length,
                "bytes": used or 0,
                "pending": 0 if isinstance(pending, Exception) else pending["pending"],
                "unread": group.get("lag"),
                "dead_letters": dead_letters,
            },
            "redis_used_memory": None if isinstance(memory, Exception) else memory["used_memory"],
        }

    async def _in_group(self, command: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """`command(*args, **kwargs)`, run again once after creating the group if it was missing."""
        try:
            return await command(*args, **kwargs)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
        await self.ensure_group()
        return await command(*args, **kwargs)


def _entry(entry_id: bytes, fields: dict[bytes, bytes] | None) -> Entry:
    return Entry(entry_id, fields or None)  # a trimmed entry reads as {} or None


def _stream_entries(response: Any) -> list[list[tuple[bytes, dict[bytes, bytes] | None]]]:
    """The entry lists of an XREADGROUP answer, whichever shape redis-py gives it."""
    if not response:
        return []
    if isinstance(response, dict):
        return [list(entries) for entries in response.values()]
    return [list(entries) for _, entries in response]


def _raw(value: Any) -> bytes:
    """A stream id as bytes (the client is not decoding; this narrows its declared type)."""
    return value if isinstance(value, bytes) else str(value).encode()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def id_key(entry_id: bytes | str) -> tuple[int, int]:
    """A stream id as a tuple that sorts as Redis sorts ids."""
    milliseconds, _, sequence = _text(entry_id).partition("-")
    return int(milliseconds), int(sequence or 0)
