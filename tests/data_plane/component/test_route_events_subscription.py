"""Route sync's `start` returns only once the plane is subscribed to route events.

Otherwise a deploy published between the plane's start and its subscription would be
acknowledged to the control plane without it (PUBLISH counts subscribers), while it still
served the previous deploy: a call right after the deploy's answer could run the old version.
"""

from __future__ import annotations

from pathlib import Path

import redis

from data_plane.registry import Registry
from data_plane.runtime.module_cache import ModuleCache
from data_plane.runtime.wasm import WasmRuntime
from data_plane.sync import RouteSync
from shared.keys import Keys
from shared.redis import connect


async def test_route_sync_is_subscribed_when_start_returns(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    runtime = WasmRuntime(max_concurrent_runs=1, max_memory_bytes=4 << 20)
    connection = await connect(redis_url)
    sync = RouteSync(connection, keys, Registry(), ModuleCache(runtime, tmp_path), "test-plane")
    observer = redis.Redis.from_url(redis_url)
    try:
        await sync.start()
        # Blocking on purpose: nothing else runs on the event loop before this answers.
        assert observer.pubsub_numsub(keys.events) == [(keys.events.encode(), 1)]
    finally:
        observer.close()
        await sync.stop()
        await connection.aclose()
        runtime.close()
