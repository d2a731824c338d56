"""Control-plane settings: one frozen dataclass, parsed once from the environment.

Every field has a default so tests can build `Settings(...)` directly; `from_environ`
is the only place that reads variables, and a malformed one raises `SettingError`
naming it.

| variable                           | default                                           |
|------------------------------------|---------------------------------------------------|
| FFAAS_REDIS_URL                    | redis://127.0.0.1:6379/0                          |
| FFAAS_REDIS_PREFIX                 | ffaas                                             |
| FFAAS_REDIS_TIMEOUT_MS             | 2000 (one Redis command; then 503 / retried)      |
| FFAAS_DATA_DIR                     | ./data (database: <dir>/control_plane.sqlite3)    |
| FFAAS_CONTROL_PLANE_HOST           | 127.0.0.1                                         |
| FFAAS_CONTROL_PLANE_PORT           | 3000                                              |
| FFAAS_PUBLIC_URL                   | http://127.0.0.1:<FFAAS_DATA_PLANE_PORT or 4000>  |
| FFAAS_ADMIN_TOKEN                  | empty: no authentication (loopback hosts only)    |
| FFAAS_ALLOW_INSECURE_ADMIN         | 0 (1: serve a non-loopback host without a token)  |
| FFAAS_MAX_MODULE_BYTES             | 33554432 (32 MiB)                                 |
| FFAAS_DEPLOY_ACK_TIMEOUT_MS        | 5000                                              |
| FFAAS_LOG_LEVEL                    | info                                              |
| FFAAS_CONVERSATION_RETENTION_HOURS | 168 (7 days); 0 keeps conversations forever       |
| FFAAS_MAX_CONVERSATIONS            | 1000000; 0 means no limit                         |
| FFAAS_RETENTION_INTERVAL_S         | 60 (retention also runs once at start)            |
| FFAAS_CONTROL_PLANE_ID             | <hostname>:<FFAAS_CONTROL_PLANE_PORT>             |
| FFAAS_INGEST_CLAIM_IDLE_MS         | 30000 (take over entries a crashed consumer left) |
| FFAAS_CONVERSATION_STREAM_MAX_BYTES| 1073741824 (1 GiB; then the oldest entries go)    |
| FFAAS_DEAD_LETTER_MAX_LENGTH       | 100000 (parked unreadable stream entries)         |
| FFAAS_MAX_PROCESSOR_CODE_BYTES     | 1048576 (1 MiB of UTF-8 processor code)           |
| FFAAS_ESBUILD_PATH                 | <repository>/node_modules/.bin/esbuild            |
| FFAAS_TRANSPILE_TIMEOUT_MS         | 10000 (one esbuild run at save time)              |
| FFAAS_DATA_PLANE_URL               | FFAAS_PUBLIC_URL (where replays are sent)         |
| FFAAS_REPLAY_TIMEOUT_MS            | 60000 (a data plane's answer to one replay)       |
| FFAAS_REPLAY_CONCURRENCY           | 2 (batch replays in flight, all batches together) |
| FFAAS_REPLAY_MAX_BATCHES           | 4 (batches running at once)                       |
| FFAAS_REPLAY_BATCH_MAX_RUNS        | 1000 (largest `limit` of one batch)               |
| FFAAS_REPLAY_BATCHES_KEPT          | 1000 (newest batch reports kept in SQLite)        |
| FFAAS_STREAM_HEARTBEAT_MS          | 15000 (a comment line on idle live streams)       |
| FFAAS_STREAM_POLL_MS               | 50 (how often live streams look for new runs)     |
| FFAAS_STREAM_MAX_CLIENTS           | 100 (connected live streams, console included)    |
| FFAAS_CONSOLE_SESSION_HOURS        | 12 (a console sign-in lasts this long)            |
| FFAAS_CONSOLE_ASSETS_DIR           | <repository>/build/console (built by make install)|
| FFAAS_TEST_REQUEST_TIMEOUT_MS      | 30000 (the console's "send a test request")       |
| FFAAS_TEST_REQUEST_MAX_BYTES       | 1048576 (its body)                                |
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import SettingError, env_bool, env_int, env_str

# `make install` runs `npm ci` at the repository root, which puts esbuild here.
DEFAULT_ESBUILD_PATH = Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "esbuild"
# `make install` bundles the console's scripts and styles here (git-ignored).
DEFAULT_CONSOLE_ASSETS_DIR = Path(__file__).resolve().parent.parent / "build" / "console"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "ffaas"
    redis_timeout_ms: int = 2000
    """The longest one Redis command may take (a hung Redis answers requests 503, never hangs them)."""
    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = 3000
    public_url: str = "http://127.0.0.1:4000"
    admin_token: str = field(default="", repr=False)
    allow_insecure_admin: bool = False
    max_module_bytes: int = 32 * 1024 * 1024
    deploy_ack_timeout_ms: int = 5000
    log_level: str = "info"
    conversation_retention_hours: int = 168
    max_conversations: int = 1_000_000
    retention_interval_s: int = 60
    control_plane_id: str = ""
    """This control plane's consumer name on the conversation stream; must survive a restart.
    Empty: `<hostname>:<port>` (see `consumer_name`)."""
    ingest_claim_idle_ms: int = 30_000
    conversation_stream_max_bytes: int = 1 << 30
    dead_letter_max_length: int = 100_000
    max_processor_code_bytes: int = 1024 * 1024
    esbuild_path: Path = DEFAULT_ESBUILD_PATH
    transpile_timeout_ms: int = 10_000
    data_plane_url: str = ""
    """Where the control plane sends replays; empty means `public_url`."""
    replay_timeout_ms: int = 60_000
    replay_concurrency: int = 2
    replay_max_batches: int = 4
    replay_batch_max_runs: int = 1000
    replay_batches_kept: int = 1000

    @property
    def replay_url(self) -> str:
        """The data plane that runs this control plane's replays."""
        return self.data_plane_url or self.public_url

    stream_heartbeat_ms: int = 15_000
    stream_poll_ms: int = 50
    stream_max_clients: int = 100
    console_session_hours: int = 12
    console_assets_dir: Path = DEFAULT_CONSOLE_ASSETS_DIR
    test_request_timeout_ms: int = 30_000
    test_request_max_bytes: int = 1024 * 1024

    @property
    def database_path(self) -> Path:
        return Path(self.data_dir) / "control_plane.sqlite3"

    @property
    def admin_api_exposed(self) -> bool:
        """The admin API listens beyond this machine with no token (only with FFAAS_ALLOW_INSECURE_ADMIN)."""
        return not self.admin_token and not is_loopback_host(self.host)

    @property
    def answers_loopback_names_only(self) -> bool:
        """No token on a loopback address: only requests naming a loopback host (`rebinding.py`)."""
        return not self.admin_token and is_loopback_host(self.host)

    @property
    def consumer_name(self) -> str:
        return self.control_plane_id or f"{socket.gethostname()}:{self.port}"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        data_plane_port = env_int(environ, "FFAAS_DATA_PLANE_PORT", 4000, minimum=1)
        public_url = env_str(environ, "FFAAS_PUBLIC_URL", f"http://127.0.0.1:{data_plane_port}")
        if not public_url.startswith(("http://", "https://")):
            raise SettingError(f"FFAAS_PUBLIC_URL must start with http:// or https://, got {public_url!r}")
        log_level = env_str(environ, "FFAAS_LOG_LEVEL", "info").lower()
        if log_level not in LOG_LEVELS:
            raise SettingError(f"FFAAS_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
        data_plane_url = env_str(environ, "FFAAS_DATA_PLANE_URL", "")
        if data_plane_url and not data_plane_url.startswith(("http://", "https://")):
            raise SettingError(
                f"FFAAS_DATA_PLANE_URL must start with http:// or https://, got {data_plane_url!r}"
            )
        port = env_int(environ, "FFAAS_CONTROL_PLANE_PORT", 3000, minimum=1)
        if port > 65535:
            raise SettingError(f"FFAAS_CONTROL_PLANE_PORT must be at most 65535, got {port}")
        settings = cls(
            redis_url=env_str(environ, "FFAAS_REDIS_URL", cls.redis_url),
            redis_prefix=env_str(environ, "FFAAS_REDIS_PREFIX", cls.redis_prefix),
            redis_timeout_ms=env_int(environ, "FFAAS_REDIS_TIMEOUT_MS", cls.redis_timeout_ms, minimum=100),
            data_dir=Path(env_str(environ, "FFAAS_DATA_DIR", "./data")),
            host=env_str(environ, "FFAAS_CONTROL_PLANE_HOST", cls.host),
            port=port,
            public_url=public_url.rstrip("/"),
            admin_token=env_str(environ, "FFAAS_ADMIN_TOKEN", ""),
            allow_insecure_admin=env_bool(environ, "FFAAS_ALLOW_INSECURE_ADMIN", cls.allow_insecure_admin),
            max_module_bytes=env_int(environ, "FFAAS_MAX_MODULE_BYTES", cls.max_module_bytes, minimum=8),
            deploy_ack_timeout_ms=env_int(environ, "FFAAS_DEPLOY_ACK_TIMEOUT_MS", cls.deploy_ack_timeout_ms),
            log_level=log_level,
            conversation_retention_hours=env_int(
                environ, "FFAAS_CONVERSATION_RETENTION_HOURS", cls.conversation_retention_hours
            ),
            max_conversations=env_int(environ, "FFAAS_MAX_CONVERSATIONS", cls.max_conversations),
            retention_interval_s=env_int(
                environ, "FFAAS_RETENTION_INTERVAL_S", cls.retention_interval_s, minimum=1
            ),
            control_plane_id=env_str(environ, "FFAAS_CONTROL_PLANE_ID", cls.control_plane_id),
            ingest_claim_idle_ms=env_int(
                environ, "FFAAS_INGEST_CLAIM_IDLE_MS", cls.ingest_claim_idle_ms, minimum=1
            ),
            conversation_stream_max_bytes=env_int(
                environ, "FFAAS_CONVERSATION_STREAM_MAX_BYTES", cls.conversation_stream_max_bytes, minimum=1
            ),
            dead_letter_max_length=env_int(
                environ, "FFAAS_DEAD_LETTER_MAX_LENGTH", cls.dead_letter_max_length, minimum=1
            ),
            max_processor_code_bytes=env_int(
                environ, "FFAAS_MAX_PROCESSOR_CODE_BYTES", cls.max_processor_code_bytes, minimum=1
            ),
            esbuild_path=Path(env_str(environ, "FFAAS_ESBUILD_PATH", str(DEFAULT_ESBUILD_PATH))),
            transpile_timeout_ms=env_int(
                environ, "FFAAS_TRANSPILE_TIMEOUT_MS", cls.transpile_timeout_ms, minimum=1
            ),
            data_plane_url=data_plane_url.rstrip("/"),
            replay_timeout_ms=env_int(environ, "FFAAS_REPLAY_TIMEOUT_MS", cls.replay_timeout_ms, minimum=1),
            replay_concurrency=env_int(
                environ, "FFAAS_REPLAY_CONCURRENCY", cls.replay_concurrency, minimum=1
            ),
            replay_max_batches=env_int(
                environ, "FFAAS_REPLAY_MAX_BATCHES", cls.replay_max_batches, minimum=1
            ),
            replay_batch_max_runs=env_int(
                environ, "FFAAS_REPLAY_BATCH_MAX_RUNS", cls.replay_batch_max_runs, minimum=1
            ),
            replay_batches_kept=env_int(
                environ, "FFAAS_REPLAY_BATCHES_KEPT", cls.replay_batches_kept, minimum=1
            ),
            stream_heartbeat_ms=env_int(
                environ, "FFAAS_STREAM_HEARTBEAT_MS", cls.stream_heartbeat_ms, minimum=10
            ),
            stream_poll_ms=env_int(environ, "FFAAS_STREAM_POLL_MS", cls.stream_poll_ms, minimum=1),
            stream_max_clients=env_int(
                environ, "FFAAS_STREAM_MAX_CLIENTS", cls.stream_max_clients, minimum=1
            ),
            console_session_hours=env_int(
                environ, "FFAAS_CONSOLE_SESSION_HOURS", cls.console_session_hours, minimum=1
            ),
            console_assets_dir=Path(
                env_str(environ, "FFAAS_CONSOLE_ASSETS_DIR", str(DEFAULT_CONSOLE_ASSETS_DIR))
            ),
            test_request_timeout_ms=env_int(
                environ, "FFAAS_TEST_REQUEST_TIMEOUT_MS", cls.test_request_timeout_ms, minimum=1
            ),
            test_request_max_bytes=env_int(
                environ, "FFAAS_TEST_REQUEST_MAX_BYTES", cls.test_request_max_bytes, minimum=0
            ),
        )
        if settings.admin_api_exposed and not settings.allow_insecure_admin:
            raise SettingError(
                f"refusing to serve the admin API on {settings.host} (FFAAS_CONTROL_PLANE_HOST) without "
                "FFAAS_ADMIN_TOKEN: anyone who reaches that address could deploy and run code. Set "
                "FFAAS_ADMIN_TOKEN (e.g. `openssl rand -hex 32`), or listen on a loopback address "
                "(FFAAS_CONTROL_PLANE_HOST=127.0.0.1), or set FFAAS_ALLOW_INSECURE_ADMIN=1 to start "
                "anyway with an open admin API"
            )
        return settings


def is_loopback_host(host: str) -> bool:
    """`localhost` or a loopback IP (127.0.0.0/8, ::1); any other name or address may be reachable."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
