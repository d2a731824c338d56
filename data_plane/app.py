"""The data plane's ASGI app: routes, and the lifespan that owns the runtime, Redis and route sync."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from data_plane.audit import ConversationRecorder
from data_plane.dispatch import EndpointDispatcher
from data_plane.executors.wagi import WagiExecutor
from data_plane.registry import Registry
from data_plane.runtime.module_cache import ModuleCache
from data_plane.runtime.wasm import RunLimits, WasmRuntime
from data_plane.settings import Settings
from data_plane.sync import RouteSync
from shared.errors import install_error_handlers
from shared.keys import Keys
from shared.redis import connect


def create_app(settings: Settings) -> DataPlaneApp:
    registry = Registry()
    runtime = WasmRuntime(
        max_concurrent_runs=settings.run_concurrency + 2, max_memory_bytes=settings.max_memory_bytes
    )
    pool = ThreadPoolExecutor(max_workers=settings.run_concurrency, thread_name_prefix="ffaas-run")
    limits = RunLimits(
        timeout_ms=settings.run_timeout_ms,
        max_memory_bytes=settings.max_memory_bytes,
        max_stdout_bytes=settings.max_response_bytes,
        max_stderr_bytes=settings.max_log_bytes,
    )
    cache = ModuleCache(runtime, settings.module_cache_dir)
    executor = WagiExecutor(runtime, pool, limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = await connect(settings.redis_url)
        keys = Keys(settings.redis_prefix)
        sync = RouteSync(redis, keys, registry, cache, settings.plane_id)
        await sync.start()
        recorder = ConversationRecorder(
            redis,
            keys,
            stream_max_length=settings.conversation_stream_max_length,
            outbox_limit=settings.outbox_max_records,
        )
        front.dispatcher = EndpointDispatcher(
            registry,
            executor,
            recorder,
            max_request_bytes=settings.max_request_bytes,
            max_captured_body_bytes=settings.max_captured_body_bytes,
        )
        app.state.redis = redis
        app.state.recorder = recorder
        try:
            yield
        finally:
            await recorder.close()
            await sync.stop()
            await redis.aclose()
            pool.shutdown(wait=True, cancel_futures=True)
            runtime.close()

    async def status(request: Request) -> JSONResponse:
        try:
            await request.app.state.redis.ping()
            redis_state = "ok"
        except (RedisError, OSError):
            redis_state = "unavailable"
        return JSONResponse(
            {
                "status": "ok",
                "service": "data-plane",
                "plane_id": settings.plane_id,
                "redis": redis_state,
                "endpoints": len(registry),
                "modules_compiled": cache.compiled,
                "modules_loaded_from_disk": cache.loaded_from_disk,
                "conversation_outbox": request.app.state.recorder.outbox_size,
            }
        )

    app = Starlette(routes=[Route("/status", status, methods=["GET"])], lifespan=lifespan)
    install_error_handlers(app)
    front = DataPlaneApp(app)
    return front


class DataPlaneApp:
    """Routes `/<endpoint-id>[/...]`, any method, straight to the dispatcher; the rest to Starlette."""

    RESERVED_FIRST_SEGMENTS = frozenset({"", "status", "processor"})

    def __init__(self, starlette: Starlette) -> None:
        self.starlette = starlette
        self.dispatcher: EndpointDispatcher | None = None
        """Set by the lifespan, once Redis is connected (it records conversations)."""

    @property
    def state(self) -> State:
        return self.starlette.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.dispatcher is not None
            and scope["path"].split("/", 2)[1] not in self.RESERVED_FIRST_SEGMENTS
        ):
            await self.dispatcher(scope, receive, send)
        else:
            await self.starlette(scope, receive, send)
