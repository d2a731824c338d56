"""Connecting to Redis: ping first, bounded and logged retries.

Every client retries a command that failed on a broken connection (Redis
restarted, connection dropped) a few times on a fresh one, so a restart of
Redis costs the planes nothing but a short delay.  A retried write may be
applied twice; everything FFAAS writes is idempotent for that reason (SET NX,
HSET of the full state, conversation records ingested by id).  A command whose
effect is its answer must not be sent again blindly: `XREADGROUP ... >` hands
entries to the consumer as it runs, so if its answer is lost (Redis killed after
running it) a second read returns the next entries and the first ones stay
pending, unseen.  Such commands go through `without_retries`, and their caller
recovers (the ingest re-reads its own pending entries).

A client given a command timeout (the control plane's, FFAAS_REDIS_TIMEOUT_MS)
gives up on any one command after it: a Redis that hangs (stopped, swapping,
stuck behind a slow command) costs a request that long, not forever.  A timed-out
command is not sent again (a hung server is not a broken connection: trying again
would only multiply the wait).  `describe_failure` words either failure for a
caller, and `unavailable` makes it the 503 (with `Retry-After`) a route answers.

A Redis URL may carry a password: it is logged and put in messages only through
`redacted`.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.errors import Unavailable

log = logging.getLogger("ffaas.redis")

COMMAND_RETRIES = 3
RETRY_AFTER_S = "1"
"""What a 503 caused by Redis tells the caller to wait before trying again."""


def redacted(url: str) -> str:
    """`url` with its password (if any) replaced by `***`, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def describe_failure(exc: BaseException) -> str:
    """Why a Redis command failed, in words a caller may read (no URL, no password)."""
    if isinstance(exc, RedisTimeoutError | TimeoutError):
        return "Redis did not answer in time (FFAAS_REDIS_TIMEOUT_MS)"
    return "Redis unavailable (FFAAS_REDIS_URL)"


def unavailable(what: str, exc: BaseException) -> Unavailable:
    """The 503 for a request that needed Redis: `<what>: <why>; retry later`, with `Retry-After`."""
    return Unavailable(
        f"{what}: {describe_failure(exc)}; retry later", headers={"Retry-After": RETRY_AFTER_S}
    )


async def connect(
    url: str, *, attempts: int = 20, delay_s: float = 0.5, command_timeout_s: float | None = None
) -> aioredis.Redis:
    """Return a client whose server answered PING; raise after `attempts` failures.

    `command_timeout_s`: the longest any one command (or connecting) may take; then it raises
    redis's TimeoutError, and is not sent again. None: no limit (blocking pub/sub readers)."""
    retried: tuple[type[RedisError], ...] = (RedisConnectionError,)
    if command_timeout_s is None:
        retried += (RedisTimeoutError,)
    client = aioredis.Redis.from_url(
        url,
        health_check_interval=10,
        socket_timeout=command_timeout_s,
        socket_connect_timeout=command_timeout_s,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), COMMAND_RETRIES, supported_errors=retried),
        retry_on_error=list(retried),
    )
    for attempt in range(1, attempts + 1):
        try:
            await client.ping()
            return client
        except (RedisError, OSError) as exc:
            if attempt == attempts:
                await client.aclose()
                where = redacted(url)
                raise RuntimeError(
                    f"Redis at {where} did not answer after {attempts} attempts (FFAAS_REDIS_URL): {exc}"
                ) from exc
            log.warning("Redis at %s not ready (attempt %d/%d): %s", redacted(url), attempt, attempts, exc)
            await asyncio.sleep(delay_s)
    raise AssertionError("unreachable")


def without_retries(client: aioredis.Redis) -> aioredis.Redis:
    """A client of its own (own pool) to the same server with the same settings as `client`, that
    never sends a command again by itself: a failure, a lost answer included, is raised at once."""
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0), "retry_on_error": []}
    return aioredis.Redis.from_pool(aioredis.ConnectionPool(connection_class=pool.connection_class, **kwargs))
