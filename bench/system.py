"""The system under test: the processes a benchmark starts, and stopping every one of them.

Each process runs in its own session (process group), its output goes to a
log file in the run's work directory, and `System.close()` stops them in the
reverse order of starting: SIGTERM to the group, then SIGKILL after a grace
period. On Linux each child also gets SIGTERM if the benchmark itself dies.
Nothing here knows what is measured; `scenarios.py` does.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.client import wait_for_every_worker, wait_until_ok

REPO = Path(__file__).resolve().parent.parent
STOP_GRACE_S = 10.0
START_TIMEOUT_S = 30.0


class SystemUnderTestError(RuntimeError):
    """A process of the system under test did not start, or died; the message says which and why."""


PORT_RANGE: tuple[int, int] | None = None
"""(first, last) port the benchmark's servers may use (`--ports`); None: any port the OS hands out."""
_handed_out: set[int] = set()


def use_port_range(first: int, last: int) -> None:
    """Every later `free_port()` comes from first..last (both included)."""
    global PORT_RANGE
    if not 1 <= first <= last <= 65535:
        raise ValueError(f"not a port range: {first}-{last}")
    PORT_RANGE = (first, last)


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on: from `PORT_RANGE` (never one handed out before in this
    run, so a server not yet bound keeps its port), or any the OS hands out."""
    if PORT_RANGE is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    first, last = PORT_RANGE
    for port in range(first, last + 1):
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise SystemUnderTestError(f"no free port left in {first}-{last} (--ports)")


def require_binary(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SystemUnderTestError(f"{name} is not installed: {hint}")
    return path


def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux to SIGTERM it when the benchmark exits."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class ManagedProcess:
    """One child process (and its process group), logging to `log_path`."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                list(self.argv),
                env=dict(self.env),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM the process group, wait up to `grace_s`, then SIGKILL it. Idempotent."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            self._signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self._signal_group(process, signal.SIGKILL)
                process.wait()
        # Whatever the leader left behind in its group goes too.
        self._signal_group(process, signal.SIGKILL)

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class System:
    """Redis, the two planes and the bare app of one benchmark run, all on free ports in `workdir`."""

    workdir: Path
    python: str = sys.executable
    admin_token: str = field(default_factory=lambda: secrets.token_hex(16))
    redis_prefix: str = field(default_factory=lambda: f"bench-{secrets.token_hex(4)}")
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    data_plane_workers: int | None = None
    """FFAAS_DATA_PLANE_WORKERS of the data plane started next; None: its default (one per core)."""

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['redis']}/0"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.admin_token}"}

    # -- starting ---------------------------------------------------------------------------------

    def start_planes(self) -> None:
        """Redis, the control plane and the data plane, each answering before this returns."""
        self.start_redis()
        self.ports.setdefault("control_plane", free_port())
        self.ports.setdefault("data_plane", free_port())
        self._start_plane("control_plane")
        self._start_plane("data_plane")

    def ensure_planes(self) -> None:
        """Starts whichever of Redis and the two planes is not running yet (after a failed scenario)."""
        self.start_redis()
        for name in ("control_plane", "data_plane"):
            self.ports.setdefault(name, free_port())
        for name in ("control_plane", "data_plane"):
            if name not in self.processes:
                self._start_plane(name)

    def start_service(self, name: str, argv: Sequence[str], ready_urls: Sequence[str]) -> ManagedProcess:
        """Any other server (e.g. workerd): started like the rest, ready once every URL answers GET 200."""
        if name in self.processes:
            raise SystemUnderTestError(f"{name} is already running")
        process = self._start(name, argv, dict(os.environ))
        try:
            for url in ready_urls:
                self._wait_http(process, url)
        except BaseException:
            self.stop(name)
            raise
        return process

    def start_redis(self) -> None:
        if "redis" in self.processes:
            return
        binary = require_binary("redis-server", "run `make install`")
        port = self.ports.setdefault("redis", free_port())
        redis_dir = self.workdir / "redis"
        redis_dir.mkdir(exist_ok=True)
        argv = [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(redis_dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ]
        process = self._start("redis", argv, dict(os.environ))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _accepts_ping(port):
            self._check_alive(process)
            if time.monotonic() > deadline:
                raise SystemUnderTestError(f"redis-server did not answer PING on :{port} in time")
            time.sleep(0.02)

    def start_bare_app(self) -> str:
        """The baseline app (bench/bare_app.py); returns its base URL."""
        if "bare_app" not in self.processes:
            port = self.ports.setdefault("bare_app", free_port())
            argv = [self.python, "-m", "bench.bare_app", "--host", "127.0.0.1", "--port", str(port)]
            process = self._start("bare_app", argv, dict(os.environ))
            self._wait_http(process, self.url("bare_app") + "/status")
        return self.url("bare_app")

    def restart(self, name: str) -> float:
        """Stops one process (SIGTERM, wait), starts it again; returns seconds until it answered."""
        process = self.processes.pop(name)
        process.stop()
        started = time.perf_counter()
        if name in ("control_plane", "data_plane"):
            self._start_plane(name)
        else:
            restarted = self._start(name, process.argv, process.env)
            self._wait_http(restarted, self.url(name) + "/status")
        return time.perf_counter() - started

    def restart_data_plane(self, workers: int | None) -> None:
        """The data plane again, with `workers` worker processes (None: its default)."""
        self.data_plane_workers = workers
        self.restart("data_plane")

    def _start_plane(self, name: str) -> None:
        self.launch_plane(name)
        self.wait_ready(name)

    def launch_plane(self, name: str) -> None:
        """Starts `python -m <name>` without waiting for it (to watch what it does while starting)."""
        self._start(name, [self.python, "-m", name], self._plane_env())

    def wait_ready(self, name: str) -> None:
        """Returns once the plane answers GET /status with 200 (the data plane: from every worker);
        raises if it died."""
        process = self.processes[name]
        self._wait_http(process, self.url(name) + "/status")
        if name == "data_plane":
            try:
                wait_for_every_worker(self.url(name), START_TIMEOUT_S, lambda: self._check_alive(process))
            except TimeoutError as exc:
                raise SystemUnderTestError(
                    f"{name}: {exc}\n--- {process.log_path} ---\n{process.log_tail()}"
                ) from None

    def stop(self, name: str) -> None:
        """Stops one process (SIGTERM, wait); `launch_plane` or `restart` brings a plane back."""
        self.processes.pop(name).stop()

    def check_running(self, name: str) -> None:
        """Raises SystemUnderTestError, with its log tail, if the process `name` has exited."""
        process = self.processes.get(name)
        if process is None:
            raise SystemUnderTestError(f"{name} is not running: it was stopped")
        self._check_alive(process)

    @property
    def database_path(self) -> Path:
        """The control plane's SQLite file (FFAAS_DATA_DIR/control_plane.sqlite3)."""
        return self.workdir / "data" / "control_plane.sqlite3"

    def _plane_env(self) -> dict[str, str]:
        # The developer's own FFAAS_* settings must not leak into the system under test.
        env = {key: value for key, value in os.environ.items() if not key.startswith("FFAAS_")}
        data_dir = self.workdir / "data"
        data_dir.mkdir(exist_ok=True)
        env.update(
            FFAAS_REDIS_URL=self.redis_url,
            FFAAS_REDIS_PREFIX=self.redis_prefix,
            FFAAS_DATA_DIR=str(data_dir),
            FFAAS_CONTROL_PLANE_PORT=str(self.ports["control_plane"]),
            FFAAS_DATA_PLANE_PORT=str(self.ports["data_plane"]),
            FFAAS_PUBLIC_URL=self.url("data_plane"),
            FFAAS_ADMIN_TOKEN=self.admin_token,
        )
        if self.data_plane_workers is not None:
            env["FFAAS_DATA_PLANE_WORKERS"] = str(self.data_plane_workers)
        return env

    def _start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> ManagedProcess:
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        process = ManagedProcess(name, argv, env, logs / f"{name}.log")
        process.start()
        self.processes[name] = process
        return process

    def _wait_http(self, process: ManagedProcess, url: str) -> None:
        try:
            wait_until_ok(url, timeout_s=START_TIMEOUT_S, still_running=lambda: self._check_alive(process))
        except TimeoutError as exc:
            raise SystemUnderTestError(
                f"{process.name}: {exc}\n--- {process.log_path} ---\n{process.log_tail()}"
            ) from None

    @staticmethod
    def _check_alive(process: ManagedProcess) -> None:
        if not process.running:
            code = process.process.returncode if process.process else None
            raise SystemUnderTestError(
                f"{process.name} exited (code {code}): {' '.join(process.argv)}\n"
                f"--- {process.log_path} ---\n{process.log_tail()}"
            )

    # -- stopping ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stops every process this system started, newest first, even if one of the stops fails."""
        errors: list[BaseException] = []
        for name in reversed(list(self.processes)):
            try:
                self.processes.pop(name).stop()
            except BaseException as exc:  # keep stopping the others
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> System:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _accepts_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False
