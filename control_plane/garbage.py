"""Deleting content-addressed bytes (module bytes, processor code) from Redis once SQLite no longer
refers to them.

SQLite decides what is garbage (`storage.modules.delete_unreferenced_modules`,
`storage.processors.delete_unreferenced_code`); the publishers then delete the same hashes here,
under their publish lock, so that a publish racing with a collection refills from SQLite whatever
it needs before it announces a route.  At start-up `sweep` also deletes keys SQLite never knew
(a database restored from a backup, a crash between the two deletions).

A Redis failure is logged, never raised: garbage left behind is collected by the next collection
or start-up.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("ffaas.control_plane.garbage")

BATCH = 500


async def delete_bytes(
    redis: aioredis.Redis,
    key_of: Callable[[str], str],
    hashes: Iterable[str],
    *,
    referenced: set[str] | None = None,
) -> int:
    """Delete the keys of `hashes`; with `referenced`, also every key of the same kind whose hash
    is not in it.  Answers how many keys were deleted."""
    doomed = [key_of(content_hash) for content_hash in hashes]
    try:
        if referenced is not None:
            prefix = key_of("")
            async for key in redis.scan_iter(match=_glob_escape(prefix) + "*", count=BATCH):
                text = key.decode() if isinstance(key, bytes) else str(key)
                if text[len(prefix) :] not in referenced:
                    doomed.append(text)
        deleted = 0
        for start in range(0, len(doomed), BATCH):
            deleted += int(await redis.delete(*doomed[start : start + BATCH]))
        if deleted:
            log.info("deleted %d unreferenced key(s) %s*", deleted, key_of(""))
        return deleted
    except (RedisError, OSError) as exc:
        log.warning("could not delete unreferenced %s* keys (collected later): %s", key_of(""), exc)
        return 0


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
