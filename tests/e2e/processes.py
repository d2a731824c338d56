"""One plane (`python -m control_plane` or `python -m data_plane`) as a real subprocess.

A `Plane` runs in its own session (process group) with its output in a log file,
is ready once `GET /status` answers 200 *and* its own log says it listens on its port
(uvicorn's line, or a data-plane worker's; so a stranger on that port cannot pass for
it), and is stopped with SIGTERM to the group, then SIGKILL after a grace period. On
Linux the child also gets SIGTERM if the test process dies, so a killed test run leaves
nothing behind. A plane that dies or does not answer in time fails the test with the
tail of its log.

Ports: a plane's port comes from `free_port()`, which another process may take before
the plane binds it. A start that fails because the port is taken is retried: on a
fresh port while nobody knows the plane's address yet (`start`, `finish_start`),
on the same port once it has served there (a restart). Planes keep their port (no
port 0): data planes will later share one port between worker processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0
POLL_S = 0.02
PORT_ATTEMPTS = 5
"""Starts tried when the port turns out to be taken (each on a new port, or the same after a pause)."""
SAME_PORT_PAUSE_S = 0.2
PORT_SETTINGS = {"control_plane": "FFAAS_CONTROL_PLANE_PORT", "data_plane": "FFAAS_DATA_PLANE_PORT"}
QUIET_LOG_LEVELS = ("warning", "error", "critical")
"""Log levels at which uvicorn does not say where it listens."""


class PlaneStartupError(AssertionError):
    """A plane exited or did not answer `GET /status` in time; the message holds its log tail."""


class PortTaken(PlaneStartupError):
    """The plane exited because another process holds its port."""


def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux to SIGTERM it when the test process exits."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def plane_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """The inherited environment without the developer's own FFAAS_* settings, plus `settings`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FFAAS_")}
    env.update(settings)
    return env


class Plane:
    """`python -m <package>` on `port` with `settings` as its FFAAS_* environment."""

    def __init__(self, package: str, *, port: int, settings: Mapping[str, str], log_path: Path) -> None:
        self.package = package
        self.port = port
        self.settings = {**settings, PORT_SETTINGS[package]: str(port)}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.served = False
        """It was ready on `port` once: others (URLs, settings) may know that port, it must keep it."""
        self._log_start = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __repr__(self) -> str:
        return f"Plane({self.package} on :{self.port})"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Launch the process and return once it is ready (retrying if its port is taken)."""
        self.launch()
        self.finish_start(time.monotonic() + timeout_s)

    def finish_start(self, deadline: float) -> None:
        """Wait for a launched process to be ready; if its port was taken, launch it again on another
        port (or, once it has `served`, on the same one after a pause), at most `PORT_ATTEMPTS` times."""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self.wait_ready(deadline)
                self.served = True
                return
            except PortTaken:
                if attempt == PORT_ATTEMPTS:
                    raise
            if self.served:
                time.sleep(SAME_PORT_PAUSE_S)  # a pause between retries, nothing is ordered by it
            else:
                self.move_to(free_port())
            self.launch()

    def move_to(self, port: int) -> None:
        """Use `port` from the next launch on (only before the plane has served anywhere)."""
        assert not self.served and not self.running, f"{self!r} cannot move: others know its port"
        self.port = port
        self.settings[PORT_SETTINGS[self.package]] = str(port)

    def launch(self) -> None:
        """Start the process without waiting for it (to start several planes side by side)."""
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._log_start = log.tell()
            log.write(f"\n=== starting {self.package} on :{self.port} ===\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.package],
                env=plane_environment(self.settings),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def wait_ready(self, deadline: float) -> None:
        """Poll `GET /status` until 200 from this process; raise `PortTaken` if it exited because its
        port is taken, else fail with the log tail if the process dies or time runs out."""
        last_error = "no answer yet"
        with httpx.Client(timeout=1.0) as client:
            while True:
                if not self.running:
                    code = self.process.returncode if self.process is not None else None
                    error = PortTaken if self._port_taken() else PlaneStartupError
                    raise error(f"{self!r} exited with code {code} while starting\n{self.describe_log()}")
                try:
                    response = client.get(f"{self.url}/status")
                    if response.status_code == 200 and self._listening():
                        return
                    last_error = f"GET /status answered {response.status_code}: {response.text[:200]}"
                    if response.status_code == 200:
                        last_error += " (not from this process: its log does not say it listens yet)"
                except httpx.TransportError as exc:
                    last_error = f"GET /status failed: {exc!r}"
                if time.monotonic() > deadline:
                    raise PlaneStartupError(f"{self!r} is not ready: {last_error}\n{self.describe_log()}")
                time.sleep(POLL_S)

    def _launch_log(self) -> str:
        """What the process wrote since its last launch."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_start)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _port_taken(self) -> bool:
        return "address already in use" in self._launch_log().lower()

    def _listening(self) -> bool:
        """This process (not a stranger that took the port) listens: uvicorn said so in its log."""
        if self.settings.get("FFAAS_LOG_LEVEL", "info").lower() in QUIET_LOG_LEVELS:
            return self.running  # uvicorn does not say; the best we can tell
        # uvicorn's own line (control plane), or a data-plane worker's (it serves on a socket of its own)
        said = rf"(Uvicorn running on|serves on) \S+:{self.port}\b"
        return re.search(said, self._launch_log()) is not None

    def status(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/status", timeout=5.0)
        assert response.status_code == 200, f"{self!r} GET /status: {response.status_code} {response.text}"
        body: dict[str, Any] = response.json()
        return body

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM the process group, wait up to `grace_s`, then SIGKILL it. Idempotent."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            _signal_group(process, signal.SIGCONT)  # a frozen plane must wake up to act on SIGTERM
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        # Whatever the leader left behind in its group goes too.
        _signal_group(process, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL the process group at once, as a crash would: no shutdown code runs. Idempotent."""
        process, self.process = self.process, None
        if process is None:
            return
        _signal_group(process, signal.SIGKILL)
        process.wait()

    def freeze(self) -> None:
        """SIGSTOP: the process keeps its sockets (and Redis subscription) but does nothing."""
        assert self.process is not None
        _signal_group(self.process, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        _signal_group(self.process, signal.SIGCONT)

    def restart(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Stop it and start it again on the same port."""
        self.stop()
        self.start(timeout_s)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def describe_log(self, lines: int = 30) -> str:
        return f"--- last {lines} lines of {self.log_path} ---\n{self.log_tail(lines)}"


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
