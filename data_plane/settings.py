"""The data plane's settings: one frozen dataclass, parsed once from the environment."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from data_plane.host.network_policy import NetworkPolicy
from data_plane.outbox import outbox_directory
from shared.settings import SettingError, env_int, env_str

MIB = 1 << 20
BUILT_V8_WORKER = Path(__file__).resolve().parent.parent / "engines" / "v8" / "worker.js"
BUILT_JS_ENGINE = Path(__file__).resolve().parent.parent / "build" / "quickjs" / "ffaas-js.wizer.wasm"


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "ffaas"
    redis_timeout_ms: int = 2000
    """The longest a request waits on Redis for anything but its record (FFAAS_RECORD_TIMEOUT_MS)."""
    data_dir: Path = Path("./data")
    host: str = "0.0.0.0"
    port: int = 4000
    plane_id: str = ""
    base_plane_id: str = ""
    """FFAAS_PLANE_ID as given; `plane_id` is this worker's (see `for_worker`). Empty: `plane_id`."""
    workers: int = 1
    """Worker processes serving `port` (`python -m data_plane` starts them; see `workers.py`)."""
    worker: int = 0
    """Which worker this process is, 0 to `workers` - 1: set by `for_worker`, not from the environment."""
    run_timeout_ms: int = 5000
    max_memory_bytes: int = 128 * MIB
    max_request_bytes: int = 10 * MIB
    max_response_bytes: int = 10 * MIB
    max_log_bytes: int = 64 * 1024
    run_concurrency: int = 32
    max_captured_body_bytes: int = 64 * 1024
    conversation_stream_max_length: int = 1_000_000
    outbox_max_bytes: int = 256 * MIB
    record_timeout_ms: int = 250
    max_audit_items: int = 1000
    outbound_allow: str = ""
    outbound_timeout_ms: int = 10_000
    max_outbound_response_bytes: int = 10 * MIB
    max_outbound_requests: int = 50
    max_outbound_in_flight_per_run: int = 8
    max_outbound_in_flight: int = 128
    max_hops: int = 8
    wasm_processor_runs: int = 64
    inline_budget_ms: int = 5
    module_cache_grace_s: int = 3600
    v8_runs: int = 32
    """V8 processor runs in flight at once in this worker process (each holds an isolate)."""
    v8_queue: int = 64
    """V8 processor runs that may wait for one of `v8_runs`, each until its deadline."""
    v8_engines: int = 1
    """V8 engine worker processes (Node.js) of this data plane worker process."""
    v8_engine_restart_runs: int = 100_000
    """An engine worker is drained and replaced after this many runs."""
    js_engine_wasm: Path = BUILT_JS_ENGINE
    v8_engine_worker: Path = BUILT_V8_WORKER
    log_level: str = "info"
    admin_token: str = field(default="", repr=False)  # never in a logged repr
    """Shared with the control plane: `POST /replay` needs the replay token derived from it."""
    max_replay_bytes: int = 32 * MIB

    @property
    def module_cache_dir(self) -> Path:
        return self.data_dir / "module-cache"

    @property
    def outbox_dir(self) -> Path:
        """This process's conversation outbox (`outbox.DiskOutbox`): one directory per plane id."""
        return outbox_directory(self.data_dir, self.plane_id)

    @property
    def worker_plane_ids(self) -> tuple[str, ...]:
        """The plane id of every worker of this data plane (what `for_worker` gives each)."""
        return worker_plane_ids(self.base_plane_id or self.plane_id, self.workers)

    def for_worker(self, index: int) -> Settings:
        """The settings of worker `index`: with several workers, each is a plane of its own,
        `<FFAAS_PLANE_ID>/<index>` (stable across restarts, so per-plane files stay its own);
        a single worker keeps `FFAAS_PLANE_ID` as it is."""
        if not 0 <= index < self.workers:
            raise ValueError(f"worker index {index} is not in 0..{self.workers - 1}")
        base = self.base_plane_id or self.plane_id
        return replace(self, plane_id=self.worker_plane_ids[index], base_plane_id=base, worker=index)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Every FFAAS_* variable of the data plane (README "Settings"); a bad value raises SettingError."""
        port = env_int(environ, "FFAAS_DATA_PLANE_PORT", cls.port, minimum=0)
        plane_id = env_str(environ, "FFAAS_PLANE_ID", f"{socket.gethostname()}:{port}")
        if environ.get("FFAAS_V8_WARM_CONTEXTS", "").strip():
            raise SettingError(
                "FFAAS_V8_WARM_CONTEXTS is no longer read: V8 runs in engine worker processes that keep "
                "their isolates; set FFAAS_V8_RUNS, FFAAS_V8_QUEUE and FFAAS_V8_ENGINES instead; remove it"
            )
        if environ.get("FFAAS_OUTBOX_MAX_RECORDS", "").strip():
            raise SettingError(
                "FFAAS_OUTBOX_MAX_RECORDS is no longer read: the outbox is on disk and bounded in bytes "
                "by FFAAS_OUTBOX_MAX_BYTES; remove it"
            )
        return cls(
            redis_url=env_str(environ, "FFAAS_REDIS_URL", cls.redis_url),
            redis_prefix=env_str(environ, "FFAAS_REDIS_PREFIX", cls.redis_prefix),
            redis_timeout_ms=env_int(environ, "FFAAS_REDIS_TIMEOUT_MS", cls.redis_timeout_ms, minimum=100),
            data_dir=Path(env_str(environ, "FFAAS_DATA_DIR", str(cls.data_dir))),
            host=env_str(environ, "FFAAS_DATA_PLANE_HOST", cls.host),
            port=port,
            plane_id=plane_id,
            base_plane_id=plane_id,
            workers=env_int(environ, "FFAAS_DATA_PLANE_WORKERS", len(os.sched_getaffinity(0)), minimum=1),
            run_timeout_ms=env_int(environ, "FFAAS_RUN_TIMEOUT_MS", cls.run_timeout_ms, minimum=1),
            max_memory_bytes=env_int(environ, "FFAAS_MAX_MEMORY_BYTES", cls.max_memory_bytes, minimum=65536),
            max_request_bytes=env_int(environ, "FFAAS_MAX_REQUEST_BYTES", cls.max_request_bytes),
            max_response_bytes=env_int(environ, "FFAAS_MAX_RESPONSE_BYTES", cls.max_response_bytes),
            max_log_bytes=env_int(environ, "FFAAS_MAX_LOG_BYTES", cls.max_log_bytes),
            run_concurrency=env_int(environ, "FFAAS_RUN_CONCURRENCY", cls.run_concurrency, minimum=1),
            max_captured_body_bytes=env_int(
                environ, "FFAAS_MAX_CAPTURED_BODY_BYTES", cls.max_captured_body_bytes
            ),
            conversation_stream_max_length=env_int(
                environ,
                "FFAAS_CONVERSATION_STREAM_MAX_LENGTH",
                cls.conversation_stream_max_length,
                minimum=1000,
            ),
            outbox_max_bytes=env_int(environ, "FFAAS_OUTBOX_MAX_BYTES", cls.outbox_max_bytes, minimum=1),
            record_timeout_ms=env_int(environ, "FFAAS_RECORD_TIMEOUT_MS", cls.record_timeout_ms, minimum=1),
            max_audit_items=env_int(environ, "FFAAS_MAX_AUDIT_ITEMS", cls.max_audit_items, minimum=2),
            outbound_allow=_outbound_allow(environ),
            outbound_timeout_ms=env_int(
                environ, "FFAAS_OUTBOUND_TIMEOUT_MS", cls.outbound_timeout_ms, minimum=1
            ),
            max_outbound_response_bytes=env_int(
                environ, "FFAAS_MAX_OUTBOUND_RESPONSE_BYTES", cls.max_outbound_response_bytes
            ),
            max_outbound_requests=env_int(environ, "FFAAS_MAX_OUTBOUND_REQUESTS", cls.max_outbound_requests),
            max_outbound_in_flight_per_run=env_int(
                environ, "FFAAS_MAX_OUTBOUND_IN_FLIGHT_PER_RUN", cls.max_outbound_in_flight_per_run, minimum=1
            ),
            max_outbound_in_flight=env_int(
                environ, "FFAAS_MAX_OUTBOUND_IN_FLIGHT", cls.max_outbound_in_flight, minimum=1
            ),
            max_hops=env_int(environ, "FFAAS_MAX_HOPS", cls.max_hops),
            wasm_processor_runs=env_int(
                environ, "FFAAS_WASM_PROCESSOR_RUNS", cls.wasm_processor_runs, minimum=1
            ),
            inline_budget_ms=env_int(environ, "FFAAS_INLINE_BUDGET_MS", cls.inline_budget_ms),
            module_cache_grace_s=env_int(environ, "FFAAS_MODULE_CACHE_GRACE_S", cls.module_cache_grace_s),
            v8_runs=env_int(environ, "FFAAS_V8_RUNS", cls.v8_runs, minimum=1),
            v8_queue=env_int(environ, "FFAAS_V8_QUEUE", cls.v8_queue),
            v8_engines=env_int(environ, "FFAAS_V8_ENGINES", cls.v8_engines, minimum=1),
            v8_engine_restart_runs=env_int(
                environ, "FFAAS_V8_ENGINE_RESTART_RUNS", cls.v8_engine_restart_runs, minimum=1
            ),
            js_engine_wasm=Path(env_str(environ, "FFAAS_JS_ENGINE_WASM", str(cls.js_engine_wasm))),
            v8_engine_worker=Path(env_str(environ, "FFAAS_V8_ENGINE_WORKER", str(cls.v8_engine_worker))),
            log_level=env_str(environ, "FFAAS_LOG_LEVEL", cls.log_level),
            admin_token=env_str(environ, "FFAAS_ADMIN_TOKEN", cls.admin_token),
            max_replay_bytes=env_int(environ, "FFAAS_MAX_REPLAY_BYTES", cls.max_replay_bytes, minimum=1024),
        )


def worker_plane_ids(base_plane_id: str, workers: int) -> tuple[str, ...]:
    """The plane ids of `workers` workers of the data plane `base_plane_id` (FFAAS_PLANE_ID)."""
    if workers == 1:
        return (base_plane_id,)
    return tuple(f"{base_plane_id}/{index}" for index in range(workers))


def _outbound_allow(environ: Mapping[str, str]) -> str:
    """FFAAS_OUTBOUND_ALLOW, checked now so that a malformed entry stops the start."""
    value = environ.get("FFAAS_OUTBOUND_ALLOW", "")
    try:
        NetworkPolicy.from_setting(value)
    except ValueError as exc:
        raise SettingError(str(exc)) from None
    return value
