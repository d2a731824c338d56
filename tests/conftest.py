"""Fixtures every kind of test shares: a real redis-server of the suite's own, free ports.

The suite starts its own `redis-server` on a free port (never the one on 6379 a
developer may be running), and each test gets its own key prefix, so tests
never see each other's state.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis


def free_port() -> int:
    """A port that was free a moment ago: another process may take it before ours binds it.

    Servers started in-process bind port 0 and read the port back instead. Subprocesses
    that need their port up front (redis-server, the planes) take one from here and
    start again if it turned out to be taken (`RedisServer.start`, `Plane.finish_start`).
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisStartupError(RuntimeError):
    """redis-server exited or did not answer in time; the message holds its log tail."""


class RedisServer:
    """A real redis-server process that a test may stop and start again on the same port.

    A first start whose port turns out to be taken moves to another port; once started,
    the server keeps its port (clients hold its URL), so a restart retries the same one.
    Started means: PING answers *and* INFO names this process, not a stranger on the port.
    """

    START_ATTEMPTS = 5
    START_TIMEOUT_S = 10.0

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; run `make install` first")
        self.binary = binary
        self.workdir = workdir
        self.log_path = workdir / "redis.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.served = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        for attempt in range(1, self.START_ATTEMPTS + 1):
            self._launch()
            if self._wait_ready():
                self.served = True
                return
            if attempt == self.START_ATTEMPTS:
                break
            if self.served:
                time.sleep(0.2)  # a pause between retries on the port clients know
            else:
                self.port = free_port()
        raise RedisStartupError(f"redis-server could not take port {self.port}\n{self._log_tail()}")

    def _launch(self) -> None:
        with self.log_path.open("ab") as log:
            self._log_start = log.tell()
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.log_path),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _wait_ready(self) -> bool:
        """True once this process answers; False if it exited because the port is taken."""
        assert self.process is not None
        client = redis.Redis.from_url(self.url, socket_timeout=1.0)
        deadline = time.monotonic() + self.START_TIMEOUT_S
        try:
            while True:
                if self.process.poll() is not None:
                    if "address already in use" in self._log_since_launch().lower():
                        return False
                    raise RedisStartupError(
                        f"redis-server exited with {self.process.returncode}\n{self._log_tail()}"
                    )
                try:
                    if int(client.info("server")["process_id"]) == self.process.pid:
                        return True
                except redis.RedisError:
                    pass  # not up yet, or a stranger holds the port (then this process exits)
                if time.monotonic() > deadline:
                    self.process.kill()
                    raise RedisStartupError(f"redis-server is not answering\n{self._log_tail()}")
                time.sleep(0.02)
        finally:
            client.close()

    def _log_since_launch(self) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_start)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _log_tail(self, lines: int = 20) -> str:
        return "\n".join(self._log_since_launch().splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing is flushed beyond what appendfsync already wrote."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def key_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"
