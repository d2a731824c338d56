"""Connecting to Redis: ping first, bounded and logged retries."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("ffaas.redis")


async def connect(url: str, *, attempts: int = 20, delay_s: float = 0.5) -> aioredis.Redis:
    """Return a client whose server answered PING; raise after `attempts` failures."""
    client = aioredis.Redis.from_url(url, health_check_interval=10)
    for attempt in range(1, attempts + 1):
        try:
            await client.ping()
            return client
        except (RedisError, OSError) as exc:
            if attempt == attempts:
                await client.aclose()
                raise RuntimeError(
                    f"Redis at {url} did not answer after {attempts} attempts (FFAAS_REDIS_URL): {exc}"
                ) from exc
            log.warning("Redis at %s not ready (attempt %d/%d): %s", url, attempt, attempts, exc)
            await asyncio.sleep(delay_s)
    raise AssertionError("unreachable")
