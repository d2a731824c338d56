"""Running a replay job: the recorded request, once more, against the job's target.

A replay goes through the same dispatchers, executors and limits as a real run
(`EndpointDispatcher.run`, `ProcessorDispatcher.run`) and is recorded the same way, as a
conversation of its own that says what ran (`endpoint_id`/`deploy_id`/`module_hash`, or
`request_processor_id`/`processor_version_id`) and what it replays (`replay_of`,
`replay_mode`). Only two things differ from a real run:
- the target is the job's, not the route's: an endpoint deploy by module hash (fetched from
  Redis and compiled, or found in the module cache, like a route's module; it stays in the
  in-memory cache until the next route change lets go of what no route uses), or processor
  code sent in the job;
- in `recorded` mode, a processor's outbound requests are answered from the job's recorded
  exchanges (`replay_outbound.RecordedOutbound`) and nothing leaves the machine; in `live`
  mode they go out through the data plane's `OutboundHttp`, under its network policy.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

import redis.asyncio as aioredis
import wasmtime
from redis.exceptions import RedisError

from data_plane.audit import ConversationRecorder
from data_plane.conversation import Conversation
from data_plane.dispatch import EndpointDispatcher
from data_plane.processor_dispatch import ProcessorDispatcher, ProcessorRun
from data_plane.registry import PreparedEndpoint, PreparedProcessor
from data_plane.replay_job import EndpointTarget, ProcessorTarget, ReplayJob
from data_plane.replay_outbound import RecordedOutbound
from data_plane.responses import answer_error
from data_plane.runtime.module_cache import ModuleCache
from shared.content_hash import content_hash
from shared.conversations import RunOutcome
from shared.errors import Conflict, PayloadTooLarge
from shared.keys import Keys
from shared.redis import unavailable


@dataclass(frozen=True)
class ReplayResult:
    conversation_id: str
    status: int


class ReplayRunner:
    def __init__(
        self,
        *,
        endpoints: EndpointDispatcher,
        processors: ProcessorDispatcher,
        recorder: ConversationRecorder,
        cache: ModuleCache,
        redis: aioredis.Redis,
        keys: Keys,
        max_request_bytes: int,
        max_captured_body_bytes: int,
        max_audit_items: int,
        redis_timeout_ms: int = 2000,
    ) -> None:
        self._endpoints = endpoints
        self._processors = processors
        self._recorder = recorder
        self._cache = cache
        self._redis = redis
        self._keys = keys
        self._redis_timeout_s = redis_timeout_ms / 1000
        self._max_request_bytes = max_request_bytes
        self._body_cap = max_captured_body_bytes
        self._max_items = max_audit_items
        self.running = 0
        self.finished = 0

    async def run(self, job: ReplayJob) -> ReplayResult:
        """Run `job` and record its conversation (in Redis when this returns, as for any run)."""
        self.running += 1
        try:
            conversation = self._conversation(job)
            if len(job.request.body) > self._max_request_bytes:
                limit = self._max_request_bytes
                refused = PayloadTooLarge(
                    f"request body exceeds the limit of {limit} bytes (FFAAS_MAX_REQUEST_BYTES)"
                )
                response = await answer_error(
                    self._recorder, conversation, refused, outcome=RunOutcome.REQUEST_TOO_LARGE
                )
            elif isinstance(job.target, EndpointTarget):
                endpoint = await self._prepared_endpoint(job.target)
                response = await self._endpoints.run(endpoint, job.request, conversation)
            else:
                outbound = RecordedOutbound(job.recorded_outbound) if job.outbound == "recorded" else None
                target = ProcessorRun(_prepared_processor(job.target), job.target.with_prelude, outbound)
                response = await self._processors.run(target, job.request, conversation)
            return ReplayResult(conversation.id, response.status_code)
        finally:
            self.running -= 1
            self.finished += 1

    def _conversation(self, job: ReplayJob) -> Conversation:
        target = job.target
        request = job.request
        if len(request.body) > self._max_request_bytes:
            request = replace(request, body=b"")  # as a real run records a refused body
        replay = {"replay_of": job.replay_of, "replay_mode": job.outbound}
        if isinstance(target, EndpointTarget):
            return Conversation(
                request,
                body_cap=self._body_cap,
                max_items=self._max_items,
                endpoint_id=target.endpoint_id,
                deploy_id=target.deploy_id,
                module_hash=target.module_hash,
                **replay,
            )
        return Conversation(
            request,
            body_cap=self._body_cap,
            max_items=self._max_items,
            request_processor_id=target.processor_id,
            processor_version_id=target.version_id,
            **replay,
        )

    async def _prepared_endpoint(self, target: EndpointTarget) -> PreparedEndpoint:
        module: wasmtime.Module | None = None
        unusable_reason = ""
        try:
            module = await self._module(target.module_hash)
        except wasmtime.WasmtimeError as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            cause = lines[-1] if lines else "compilation failed"
            unusable_reason = f"the deployed module cannot run on this data plane: {cause}"
        return PreparedEndpoint(
            endpoint_id=target.endpoint_id,
            deploy_id=target.deploy_id,
            module_hash=target.module_hash,
            module=module,
            env=target.env,
            unusable_reason=unusable_reason,
        )

    async def _module(self, module_hash: str) -> wasmtime.Module:
        module = self._cache.get(module_hash)
        if module is not None:
            return module
        # Fetched even when the disk cache has it: a corrupt artifact is recompiled from these bytes.
        try:
            async with asyncio.timeout(self._redis_timeout_s):
                stored = await self._redis.get(self._keys.module(module_hash))
        except (RedisError, OSError, TimeoutError) as exc:
            raise unavailable(f"module {module_hash} cannot be fetched from Redis", exc) from exc
        wasm = stored if isinstance(stored, bytes) else (stored or "").encode()
        if stored is None or content_hash(wasm) != module_hash:
            raise Conflict(f"module {module_hash} is missing or corrupt in Redis; deploy it again")
        return await asyncio.to_thread(self._cache.load_or_compile, module_hash, lambda: wasm)


def _prepared_processor(target: ProcessorTarget) -> PreparedProcessor:
    return PreparedProcessor(
        processor_id=target.processor_id,
        name=target.name,
        language=target.language,
        runtime=target.runtime,
        code_hash=target.code_hash,
        source=target.code,
        version_id=target.version_id or "",
    )
