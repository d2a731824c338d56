"""GET /status: the control plane is up; what Redis and the conversation ingest are doing.

`{"status": "ok", "service": "control-plane", "redis": "ok" | "unavailable",
"conversation_stream": {length, bytes, pending, unread, dead_letters} | null,
"redis_used_memory": <bytes> | null, "ingest": {consumer, stored, duplicates, parked, ...}}`.
Redis is asked once (one pipeline), bounded by a timeout: a hung Redis must not hang the
health check, and an unavailable one does not fail it. Also how many batch replays are running
and how many of their runs are on a data plane now, and how many live streams (GET
/conversation/stream and the console's) are connected, and their bound (FFAAS_STREAM_MAX_CLIENTS).
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from control_plane.state import services
from shared.openapi import Schema, json_answer, operation

schemas: dict[str, Schema] = {
    "ControlPlaneStatus": {
        "type": "object",
        "description": "Always 200 while the process serves; more fields may be added.",
        "required": ["status", "service", "redis"],
        "properties": {
            "status": {"const": "ok"},
            "service": {"const": "control-plane"},
            "redis": {"enum": ["ok", "unavailable"]},
        },
    },
}

STATUS_REDIS_TIMEOUT_S = 1.0


@operation(
    "Is the control plane up, and does Redis answer",
    tag="status",
    public=True,
    responses={
        200: json_answer("The control plane serves", {"$ref": "#/components/schemas/ControlPlaneStatus"})
    },
)
async def get_status(request: Request) -> JSONResponse:
    found = services(request)
    stream: dict[str, Any] = {"conversation_stream": None, "redis_used_memory": None}
    try:
        async with asyncio.timeout(STATUS_REDIS_TIMEOUT_S):
            stream = await found.ingester.stream.status()
        redis = "ok"
    except (RedisError, OSError, TimeoutError):
        redis = "unavailable"
    batches = found.replay_batches
    feed = found.feed
    return JSONResponse(
        {
            "status": "ok",
            "service": "control-plane",
            "redis": redis,
            "replay_batches_running": batches.running,
            "replay_runs_in_flight": batches.runs_in_flight,
            "stream_clients": feed.clients,
            "stream_max_clients": feed.max_clients,
            **stream,
            "ingest": found.ingester.counters(),
        }
    )


routes = [Route("/status", get_status, methods=["GET"])]
