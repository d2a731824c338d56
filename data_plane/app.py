"""The data plane's ASGI app: routing, and the lifespan that owns the runtimes, Redis and route sync.

Runs (`/<endpoint-id>[/...]` and `/processor/<id>/...`, any method) go straight
to their dispatchers, which are plain ASGI apps; Starlette serves the rest
(`/status`, `/openapi.json`, and `POST /replay` for control planes, see `replay`) and drives the
lifespan. The first path segment of every Starlette route is never taken for an endpoint id. The
run routes are described in `openapi.py` (`RUNS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from data_plane.audit import ConversationRecorder
from data_plane.dispatch import EndpointDispatcher
from data_plane.executors.js import Evaluator, JsExecutor
from data_plane.executors.js_v8 import V8Evaluator
from data_plane.executors.js_wasm import WasmEvaluator
from data_plane.executors.wagi import WagiExecutor
from data_plane.host.network_policy import NetworkPolicy
from data_plane.host.outbound_http import OutboundHttp
from data_plane.host.outbound_limits import OutboundLimits
from data_plane.openapi import routes as openapi_routes
from data_plane.outbox import DiskOutbox
from data_plane.outbox_adoption import OutboxAdoption
from data_plane.processor_dispatch import ProcessorDispatcher
from data_plane.registry import Registry
from data_plane.replay import ReplayRoute
from data_plane.replay_runner import ReplayRunner
from data_plane.runtime.fresh_runs import FreshRunLimit
from data_plane.runtime.inline_runs import InlineRuns
from data_plane.runtime.module_cache import ModuleCache
from data_plane.runtime.quickjs_wasm import EngineLoader
from data_plane.runtime.v8_engines import EngineSettings, EngineUnavailable, V8Engines
from data_plane.runtime.wasm import RunLimits, WasmRuntime
from data_plane.settings import Settings
from data_plane.sync import RouteSync
from shared.errors import install_error_handlers
from shared.keys import Keys
from shared.openapi import json_answer, operation, ref
from shared.redis import connect

log = logging.getLogger("ffaas.data_plane")
STATUS_PING_TIMEOUT_S = 1.0
FRESH_RUN_AGE_S = 0.005
"""JS-in-wasm runs admitted at once: one per usable core, counting only runs younger than this."""


def create_app(settings: Settings) -> DataPlaneApp:
    registry = Registry()
    # An instance for every worker thread, every wasm processor run (which keeps its instance
    # while it waits for answers) and the event-loop thread, plus one to spare.
    runtime = WasmRuntime(
        max_concurrent_runs=settings.run_concurrency + settings.wasm_processor_runs + 2,
        max_memory_bytes=settings.max_memory_bytes,
    )
    pool = ThreadPoolExecutor(max_workers=settings.run_concurrency, thread_name_prefix="ffaas-run")
    limits = RunLimits(
        timeout_ms=settings.run_timeout_ms,
        max_memory_bytes=settings.max_memory_bytes,
        max_stdout_bytes=settings.max_response_bytes,
        max_stderr_bytes=settings.max_log_bytes,
    )
    cache = ModuleCache(runtime, settings.module_cache_dir, disk_grace_s=settings.module_cache_grace_s)
    quickjs = EngineLoader(runtime, cache, settings.js_engine_wasm)
    inline = InlineRuns(settings.inline_budget_ms)
    wagi = WagiExecutor(runtime, pool, limits, inline)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Each resource is registered for release as soon as it exists, so a start-up that fails
        # part-way releases what it had started (threads, connections) as a shutdown would.
        async with contextlib.AsyncExitStack() as resources:
            runtime.start()
            resources.callback(runtime.close)
            resources.callback(pool.shutdown, wait=True, cancel_futures=True)
            redis = await connect(settings.redis_url)
            resources.push_async_callback(redis.aclose)
            keys = Keys(settings.redis_prefix)
            sync = RouteSync(redis, keys, registry, cache, settings.plane_id)
            resources.push_async_callback(sync.stop)
            await sync.start()
            v8 = V8Engines(
                EngineSettings(
                    engines=settings.v8_engines,
                    max_runs=settings.v8_runs,
                    max_memory_bytes=settings.max_memory_bytes,
                    restart_after=settings.v8_engine_restart_runs,
                    worker=settings.v8_engine_worker,
                )
            )
            resources.push_async_callback(v8.close)
            engine_starts: set[asyncio.Task[None]] = set()

            async def start_v8() -> None:
                try:
                    await v8.start()
                except EngineUnavailable as exc:  # runs on V8 answer why; the rest is served
                    log.error("%s", exc)

            def start_engines(runtimes: set[str]) -> None:
                """A processor arrived: its runtime's engine starts now, in the background, so that
                its first run does not wait for it (~100 ms for the V8 engine workers). A data plane
                without processors of a runtime never pays for its engine."""
                if "v8" in runtimes and not v8.started:
                    task = asyncio.create_task(start_v8(), name="ffaas-v8-start")
                    engine_starts.add(task)
                    task.add_done_callback(engine_starts.discard)
                if "wasm" in runtimes and quickjs.state == "not loaded":
                    quickjs.start()

            if "v8" in registry.processor_runtimes():
                await start_v8()  # before serving: the processors already there run at once
            start_engines(registry.processor_runtimes())
            registry.runtimes_needed = start_engines
            outbound = OutboundHttp(
                NetworkPolicy.from_setting(settings.outbound_allow),
                timeout_ms=settings.outbound_timeout_ms,
                max_response_bytes=settings.max_outbound_response_bytes,
            )
            resources.push_async_callback(outbound.aclose)
            outbox = DiskOutbox(settings.outbox_dir, max_bytes=settings.outbox_max_bytes)
            recorder = ConversationRecorder(
                redis,
                keys,
                outbox,
                plane_id=settings.plane_id,
                stream_max_length=settings.conversation_stream_max_length,
                record_timeout_ms=settings.record_timeout_ms,
            )
            resources.push_async_callback(recorder.close)
            await recorder.register_held_now(settings.record_timeout_ms / 1000)
            recorder.start()
            adoption = OutboxAdoption(
                redis,
                keys,
                data_dir=settings.data_dir,
                base_plane_id=settings.base_plane_id or settings.plane_id,
                worker_plane_ids=settings.worker_plane_ids,
                plane_id=settings.plane_id,
                max_bytes=settings.outbox_max_bytes,
                stream_max_length=settings.conversation_stream_max_length,
                record_timeout_ms=settings.record_timeout_ms,
            )
            resources.push_async_callback(adoption.close)
            await adoption.start()
            capture = {
                "max_request_bytes": settings.max_request_bytes,
                "max_captured_body_bytes": settings.max_captured_body_bytes,
                "max_audit_items": settings.max_audit_items,
            }
            front.endpoints = EndpointDispatcher(
                registry, wagi, recorder, **capture, max_hops=settings.max_hops
            )
            fresh_runs = FreshRunLimit(limit=len(os.sched_getaffinity(0)), age_s=FRESH_RUN_AGE_S)
            limits = {"timeout_ms": settings.run_timeout_ms, "max_memory_bytes": settings.max_memory_bytes}
            wasm = WasmEvaluator(
                quickjs, pool, fresh_runs, inline, **limits, max_runs=settings.wasm_processor_runs
            )
            on_v8 = V8Evaluator(v8, **limits, max_runs=settings.v8_runs, max_queued=settings.v8_queue)
            runtimes: dict[str, Evaluator] = {"v8": on_v8, "wasm": wasm}
            outbound_limits = OutboundLimits(
                max_requests=settings.max_outbound_requests,
                max_in_flight_per_run=settings.max_outbound_in_flight_per_run,
                max_in_flight=settings.max_outbound_in_flight,
                max_hops=settings.max_hops,
            )
            js = JsExecutor(runtimes, outbound, outbound_limits, max_log_bytes=settings.max_log_bytes)
            front.processors = ProcessorDispatcher(
                registry, js, recorder, **capture, max_hops=settings.max_hops
            )
            replays.runner = ReplayRunner(
                endpoints=front.endpoints,
                processors=front.processors,
                recorder=recorder,
                cache=cache,
                redis=redis,
                keys=keys,
                redis_timeout_ms=settings.redis_timeout_ms,
                **capture,
            )
            resources.callback(front.stop_serving_runs)
            resources.callback(setattr, replays, "runner", None)
            app.state.redis = redis
            app.state.recorder = recorder
            app.state.adoption = adoption
            app.state.sync = sync
            app.state.outbound_limits = outbound_limits
            app.state.wasm_processors = wasm
            app.state.v8_processors = on_v8
            app.state.v8_engines = v8
            yield

    @operation(
        "Is the data plane up, and what does it serve",
        tag="status",
        public=True,
        responses={200: json_answer("The data plane serves", ref("DataPlaneStatus"))},
    )
    async def status(request: Request) -> JSONResponse:
        outbox: DiskOutbox = request.app.state.recorder.outbox
        try:
            async with asyncio.timeout(STATUS_PING_TIMEOUT_S):  # a hanging Redis must not hang /status
                await request.app.state.redis.ping()
            redis_state = "ok"
        except (RedisError, OSError, TimeoutError):
            redis_state = "unavailable"
        return JSONResponse(
            {
                "status": "ok",
                "service": "data-plane",
                "plane_id": settings.plane_id,
                "workers": settings.workers,
                "worker": settings.worker,
                "pid": os.getpid(),
                "redis": redis_state,
                "endpoints": len(registry),
                "processors": registry.processor_count,
                "processor_sources": request.app.state.sync.sources_held,
                "modules_compiled": cache.compiled,
                "modules_loaded_from_disk": cache.loaded_from_disk,
                "modules_in_memory": cache.in_memory,
                "module_artifacts_deleted": cache.artifacts_deleted,
                "wasm_js_engine": quickjs.state,
                "runs_inline": inline.inline_runs,
                "runs_on_pool": inline.pool_runs,
                "pool_only_guests": inline.pool_only,
                "conversation_outbox": len(outbox),
                "conversation_outbox_bytes": outbox.bytes,
                "conversation_outbox_dropped": outbox.dropped,
                "conversation_outbox_adopting": request.app.state.adoption.held,
                "conversation_outboxes_adopted": request.app.state.adoption.adopted,
                "replays_running": replays.runner.running if replays.runner else 0,
                "replays_finished": replays.runner.finished if replays.runner else 0,
                "route_sync": request.app.state.sync.health.state,
                "route_sync_last_error": request.app.state.sync.health.last_error,
                "route_sync_errors": request.app.state.sync.health.errors,
                "outbound_in_flight": request.app.state.outbound_limits.in_flight,
                "outbound_waiting": request.app.state.outbound_limits.waiting,
                "outbound_refused": request.app.state.outbound_limits.refused,
                "wasm_processor_runs": request.app.state.wasm_processors.slots.runs,
                "wasm_processor_queue": request.app.state.wasm_processors.slots.queued,
                "v8_processor_runs": request.app.state.v8_processors.slots.runs,
                "v8_processor_queue": request.app.state.v8_processors.slots.queued,
                "v8_engine_pids": request.app.state.v8_engines.pids,
                "v8_engines_respawned": request.app.state.v8_engines.respawned,
                "v8_engines_restarted": request.app.state.v8_engines.restarted,
            }
        )

    replays = ReplayRoute(admin_token=settings.admin_token, max_job_bytes=settings.max_replay_bytes)
    app = Starlette(
        routes=[
            Route("/status", status, methods=["GET"]),
            Route("/replay", replays.handle, methods=["POST"]),
            *openapi_routes,
        ],
        lifespan=lifespan,
    )
    install_error_handlers(app)
    front = DataPlaneApp(app)  # the lifespan above installs its dispatchers once Redis is connected
    return front


class DataPlaneApp:
    """Routes runs, any method, straight to their dispatcher; everything else to Starlette."""

    def __init__(self, starlette: Starlette) -> None:
        self.starlette = starlette
        self.endpoints: ASGIApp | None = None
        self.processors: ASGIApp | None = None
        # "", "processor" and the first segment of every Starlette route: never endpoint ids.
        self.not_endpoints = {"", "processor"} | {_first_segment(route) for route in starlette.routes}

    def stop_serving_runs(self) -> None:
        self.endpoints = self.processors = None

    @property
    def state(self) -> State:
        return self.starlette.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            first_segment = scope["path"].split("/", 2)[1]
            if first_segment == "processor" and self.processors is not None:
                return await self.processors(scope, receive, send)
            if first_segment not in self.not_endpoints and self.endpoints is not None:
                return await self.endpoints(scope, receive, send)
        await self.starlette(scope, receive, send)


def _first_segment(route: BaseRoute) -> str:
    path: str = getattr(route, "path", "")
    return path.split("/", 2)[1] if path.startswith("/") else ""
