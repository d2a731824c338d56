"""`create_app(settings)`: the control plane's Starlette app.

The lifespan opens (and migrates) the database, connects Redis (ping, bounded retries; every
command bounded by FFAAS_REDIS_TIMEOUT_MS, and a Redis failure no route words itself answers
503 with `Retry-After`),
reconciles Redis with SQLite (endpoints and processors), starts the conversation stream
consumer (`ingest.py`), retention (`retention.py`), replays (`replay.py`, batches in
`replay_batches.py`, sent to a data plane by `replay_client.py`) and the live feed
(`conversation_feed.py`), and stores them on `app.state.services`. At shutdown it stops
running batches and the background tasks first, then closes Redis and the database. Nothing
is opened at import time; a missing esbuild is logged, not fatal (saving a processor then
answers 503). With no admin token, a request naming a host that is not loopback is refused
first (`rebinding.py`); browser writes from another origin are refused before anything else
(`cross_site.py`). Routes come from `routes/` and the web
console from `console/`; every API error leaves as the one JSON error body
(`shared.errors.install_error_handlers`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from control_plane.auth import AdminTokenMiddleware
from control_plane.console import console_routes
from control_plane.console.security import ConsoleSecurityHeaders
from control_plane.console.session import session_middleware
from control_plane.conversation_feed import ConversationFeed
from control_plane.cross_site import CrossSiteWriteGuard
from control_plane.ingest import BLOCK_MS, Ingester
from control_plane.publisher import Publisher
from control_plane.rebinding import LoopbackHostGuard
from control_plane.replay import Replayer
from control_plane.replay_batches import ReplayBatches
from control_plane.replay_client import DataPlaneClient
from control_plane.retention import Retention
from control_plane.routes import (
    conversations,
    deploys,
    endpoints,
    openapi,
    processor_versions,
    processors,
    replay,
    status,
    stream,
)
from control_plane.settings import Settings
from control_plane.state import Services
from control_plane.storage import replay_batches as replay_batch_store
from control_plane.storage.database import open_database
from control_plane.transpile import esbuild_missing
from shared import redis as shared_redis
from shared.errors import error_response, install_error_handlers
from shared.keys import Keys

log = logging.getLogger("ffaas.control_plane")


def create_app(settings: Settings) -> Starlette:
    routes: list[BaseRoute] = [
        *status.routes,
        *openapi.routes,
        *endpoints.routes,
        *deploys.routes,
        *processors.routes,
        *processor_versions.routes,
        *stream.routes,  # before conversations': /conversation/stream is not a conversation id
        *conversations.routes,
        *replay.routes,
        *console_routes(settings),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = await open_database(settings.database_path)
        try:
            redis = await shared_redis.connect(
                settings.redis_url, command_timeout_s=settings.redis_timeout_ms / 1000
            )
        except BaseException:
            await db.close()
            raise
        try:
            keys = Keys(settings.redis_prefix)
            publisher = Publisher(
                db,
                redis,
                keys,
                ack_timeout_ms=settings.deploy_ack_timeout_ms,
                redis_timeout_ms=settings.redis_timeout_ms,
            )
            await publisher.reconcile()  # endpoints and processors
            feed = ConversationFeed(
                db, poll_ms=settings.stream_poll_ms, max_clients=settings.stream_max_clients
            )
            ingester = Ingester(
                db,
                redis,
                keys,
                consumer=settings.consumer_name,
                claim_idle_ms=settings.ingest_claim_idle_ms,
                max_stream_bytes=settings.conversation_stream_max_bytes,
                dead_letter_max_length=settings.dead_letter_max_length,
                block_ms=min(BLOCK_MS, settings.redis_timeout_ms // 2),
                on_stored=feed.nudge,
            )
            retention = Retention(
                db,
                retention_hours=settings.conversation_retention_hours,
                max_conversations=settings.max_conversations,
                interval_s=settings.retention_interval_s,
            )
            data_plane = DataPlaneClient(
                settings.replay_url, admin_token=settings.admin_token, timeout_ms=settings.replay_timeout_ms
            )
            replayer = Replayer(db, ingester, data_plane)
            batches = ReplayBatches(
                db,
                replayer,
                concurrency=settings.replay_concurrency,
                max_batches=settings.replay_max_batches,
                keep=settings.replay_batches_kept,
            )
            if interrupted := await replay_batch_store.interrupt_running(db):
                log.warning("%d replay batch(es) were running when the control plane stopped", interrupted)
            app.state.services = Services(
                settings, db, redis, keys, publisher, ingester, retention, replayer, batches, feed
            )
            ingester.start()
            retention.start()
            feed.start()
            log.info(
                "control plane ready: database %s, Redis %s",
                settings.database_path,
                shared_redis.redacted(settings.redis_url),
            )
            if (missing := esbuild_missing(settings.esbuild_path)) is not None:
                log.warning("saving processors will answer 503: %s", missing)
            try:
                yield
            finally:
                try:
                    await batches.close()
                    await feed.stop()
                    await ingester.stop()
                finally:
                    await retention.stop()
                    await publisher.close()
                    await data_plane.aclose()
        finally:
            await redis.aclose()
            await db.close()

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(ConsoleSecurityHeaders),
            *([Middleware(LoopbackHostGuard)] if settings.answers_loopback_names_only else []),
            Middleware(CrossSiteWriteGuard),  # before any authentication: a browser's cross-site write
            session_middleware(settings),  # outside the token check, which accepts a console session
            Middleware(AdminTokenMiddleware, token=settings.admin_token),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_exception_handler(RedisError, _redis_failed)
    return app


async def _redis_failed(request: Request, exc: Exception) -> Response:
    """Any Redis failure a route did not word itself: 503 with `Retry-After`, never a 500 or a hang
    (every command has the FFAAS_REDIS_TIMEOUT_MS deadline)."""
    log.warning("%s %s: Redis failed: %r", request.method, request.url.path, exc)
    failure = shared_redis.unavailable(f"{request.method} {request.url.path} needs Redis", exc)
    return error_response(failure.status, failure.message, failure.headers)
