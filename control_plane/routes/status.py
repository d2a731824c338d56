"""GET /status: the control plane is up; says whether Redis answers, without failing if not, and how
many batch replays are running and how many of their runs are on a data plane now.

Also how many live streams (GET /conversation/stream and the console's) are connected, and
their bound (FFAAS_STREAM_MAX_CLIENTS).
"""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from control_plane.state import services

STATUS_PING_TIMEOUT_S = 1.0


async def get_status(request: Request) -> JSONResponse:
    try:
        # Bounded: a hung Redis must not hang the health check.
        async with asyncio.timeout(STATUS_PING_TIMEOUT_S):
            await services(request).redis.ping()
        redis = "ok"
    except (RedisError, OSError, TimeoutError):
        redis = "unavailable"
    batches = services(request).replay_batches
    feed = services(request).feed
    return JSONResponse(
        {
            "status": "ok",
            "service": "control-plane",
            "redis": redis,
            "replay_batches_running": batches.running,
            "replay_runs_in_flight": batches.runs_in_flight,
            "stream_clients": feed.clients,
            "stream_max_clients": feed.max_clients,
        }
    )


routes = [Route("/status", get_status, methods=["GET"])]
