"""The data plane's supervisor: N worker processes serving one port, restarted when they die.

`python -m data_plane` runs `Supervisor(settings).run()`. It serves nothing itself and
imports no web framework: it checks the port, starts `settings.workers` processes of
`data_plane.worker_process` (each a whole data plane with its own plane id, see
`Settings.for_worker`), and watches them.

How the workers share the port: each binds host:port with SO_REUSEPORT and the kernel
spreads incoming connections over the listening sockets by a hash of the connection.
The alternative, one listening socket inherited by every worker, lets whichever worker
wakes first accept a whole burst: 50 connections opened at once (as wrk does; they then
stay open for the whole run) landed 50/0, 49/1, 45/5 on two uvicorn processes in most
tries, against 21/29, 23/27, 18/32 with SO_REUSEPORT.

Invariants:
- The port is checked before any worker starts: a bind without SO_REUSEPORT fails if
  anything listens there, another data plane included, and the data plane exits 1
  naming host:port. Then the supervisor holds a bound, never-listening SO_REUSEPORT
  socket on the port for its whole life, so the port stays this data plane's (and a
  port 0 becomes one concrete port) even while every worker restarts. The kernel only
  hands connections to listening sockets, so this one never gets any.
- A worker is ready once it wrote a byte to its pipe (its app started and it listens).
- A worker that exits while the data plane is not stopping is started again after a
  back-off that grows with each exit in a row (`RESTART_DELAYS_S`, reset once a worker
  stayed up `STABLE_S`), logged with its exit status. `MAX_START_FAILURES` exits in a row
  before ever being ready stop the whole data plane with exit status 1.
- SIGTERM or SIGINT: every worker gets SIGTERM (it drains as uvicorn does: in-flight
  runs finish and are recorded) and the supervisor exits 0 once all have exited. A
  further SIGINT is passed on as SIGINT, which makes uvicorn quit without waiting.
- Workers are in the supervisor's process group (a signal to the group reaches them)
  and get SIGTERM from Linux if the supervisor dies, so none is left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType

from data_plane.settings import Settings
from shared.serving import bind_socket

log = logging.getLogger("ffaas.workers")

RESTART_DELAYS_S = (0.1, 0.5, 1.0, 2.0, 5.0)
STABLE_S = 30.0
MAX_START_FAILURES = 3
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
PR_SET_PDEATHSIG = 1


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    ready_pipe: int | None = None
    ready_at: float | None = None
    exits_in_a_row: int = 0
    start_failures: int = 0
    start_at: float | None = None


class Supervisor:
    def __init__(self, settings: Settings, environ: Mapping[str, str]) -> None:
        self._settings = settings
        self._environ = {**environ, "FFAAS_DATA_PLANE_WORKERS": str(settings.workers)}
        self._workers = [_Worker(index) for index in range(settings.workers)]
        self._selector = selectors.DefaultSelector()
        self._stopping = False
        self._exit_status = 0
        self._all_ready_said = False

    def run(self) -> int:
        """Serve until stopped; the process's exit status (0 after SIGTERM/SIGINT, 1 on failure)."""
        host, port = self._settings.host, self._settings.port
        try:
            reservation = reserve_port(host, port)
        except OSError as exc:
            log.error(
                "data plane cannot listen on %s:%d: %s (FFAAS_DATA_PLANE_HOST, FFAAS_DATA_PLANE_PORT)",
                host,
                port,
                exc.strerror or exc,
            )
            return 1
        port = reservation.getsockname()[1]
        self._environ["FFAAS_DATA_PLANE_PORT"] = str(port)  # a port 0 is now the reserved one
        wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        previous_wakeup = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        watched = (*STOP_SIGNALS, signal.SIGCHLD)
        previous_handlers = {signum: signal.signal(signum, _note_signal) for signum in watched}
        self._selector.register(wake_read, selectors.EVENT_READ, None)
        try:
            log.info("data plane: starting %d worker(s) on %s:%d", len(self._workers), host, port)
            for worker in self._workers:
                self._start(worker)
            return self._watch(wake_read)
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(previous_wakeup)
            for worker in self._workers:
                self._close_ready_pipe(worker)
            self._selector.close()
            os.close(wake_read)
            os.close(wake_write)
            reservation.close()

    def _watch(self, wake_read: int) -> int:
        while True:
            for key, _ in self._selector.select(self._until_next_start()):
                if key.data is None:
                    self._on_signals(os.read(wake_read, 512))
                else:
                    self._on_ready_pipe(key.data)
            self._reap()
            if self._stopping:
                if not any(worker.process for worker in self._workers):
                    log.info("data plane stopped")
                    return self._exit_status
            else:
                self._start_due()

    # -- signals ----------------------------------------------------------------------------------------

    def _on_signals(self, signals: bytes) -> None:
        for signum in signals:
            if signum not in STOP_SIGNALS:
                continue  # SIGCHLD: `_reap` looks at every worker after each wake-up
            if not self._stopping:
                log.info("data plane: %s received; stopping %d worker(s)", _name(signum), len(self._workers))
                self._stop(exit_status=0)
            elif signum == signal.SIGINT:
                self._signal_all(signal.SIGINT)  # a second Ctrl-C: stop without waiting for runs

    def _stop(self, *, exit_status: int) -> None:
        self._stopping, self._exit_status = True, exit_status
        for worker in self._workers:
            worker.start_at = None
        self._signal_all(signal.SIGTERM)

    def _signal_all(self, signum: int) -> None:
        # os.kill, not Popen.send_signal: that one would reap an exited worker behind `_reap`'s back.
        # Until `_reap` collects it, a worker's pid stays its own (a zombie), never another process's.
        for worker in self._workers:
            if worker.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.process.pid, signum)

    # -- workers ----------------------------------------------------------------------------------------

    def _start(self, worker: _Worker) -> None:
        worker.start_at = None
        ready_read, ready_write = os.pipe2(os.O_CLOEXEC)
        argv = [sys.executable, "-m", "data_plane.worker_process"]
        argv += ["--index", str(worker.index), "--ready-fd", str(ready_write)]
        try:
            worker.process = subprocess.Popen(
                argv,
                env=self._environ,
                stdin=subprocess.DEVNULL,
                pass_fds=(ready_write,),
                preexec_fn=_dies_with(os.getpid()),
            )
        except OSError as exc:
            os.close(ready_read)
            log.error("data plane worker %d could not be started: %s", worker.index, exc)
            self._after_exit(worker)
            return
        finally:
            os.close(ready_write)
        worker.ready_pipe, worker.ready_at = ready_read, None
        self._selector.register(ready_read, selectors.EVENT_READ, worker)
        log.info("data plane worker %d started (pid %d)", worker.index, worker.process.pid)

    def _on_ready_pipe(self, worker: _Worker) -> None:
        assert worker.ready_pipe is not None
        if os.read(worker.ready_pipe, 16):
            worker.ready_at = time.monotonic()
            worker.start_failures = 0
        self._close_ready_pipe(worker)  # one byte, or the end of a worker that died first
        if not self._all_ready_said and all(worker.ready_at is not None for worker in self._workers):
            self._all_ready_said = True
            log.info("data plane: all %d worker(s) ready", len(self._workers))

    def _close_ready_pipe(self, worker: _Worker) -> None:
        if worker.ready_pipe is not None:
            self._selector.unregister(worker.ready_pipe)
            os.close(worker.ready_pipe)
            worker.ready_pipe = None

    def _reap(self) -> None:
        """Collect every child that exited: workers, and any orphan this process adopted (as PID 1 of
        a container it inherits its workers' orphaned children, which nobody else would reap)."""
        workers = {worker.process.pid: worker for worker in self._workers if worker.process is not None}
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = workers.get(pid)
            if worker is None or worker.process is None:
                continue
            status = os.waitstatus_to_exitcode(wait_status)
            worker.process.returncode = status  # reaped here: Popen must not wait for it again
            worker.process = None
            self._close_ready_pipe(worker)
            if self._stopping:
                log.info("data plane worker %d (pid %d) stopped", worker.index, pid)
            else:
                log.warning("data plane worker %d (pid %d) %s", worker.index, pid, _exit(status))
                self._after_exit(worker)

    def _after_exit(self, worker: _Worker) -> None:
        """Schedule the worker's next start, or stop everything if it keeps failing to start."""
        now = time.monotonic()
        if worker.ready_at is None:
            worker.start_failures += 1
        elif now - worker.ready_at >= STABLE_S:
            worker.exits_in_a_row = 0
        worker.exits_in_a_row += 1
        worker.ready_at = None
        if worker.start_failures >= MAX_START_FAILURES:
            log.error(
                "data plane worker %d failed %d times in a row before serving; stopping the data plane "
                "(its errors are above)",
                worker.index,
                worker.start_failures,
            )
            self._stop(exit_status=1)
            return
        delay = RESTART_DELAYS_S[min(worker.exits_in_a_row, len(RESTART_DELAYS_S)) - 1]
        worker.start_at = now + delay
        log.warning("data plane worker %d starts again in %g s", worker.index, delay)

    def _start_due(self) -> None:
        now = time.monotonic()
        for worker in self._workers:
            if worker.start_at is not None and worker.start_at <= now:
                self._start(worker)

    def _until_next_start(self) -> float | None:
        due = [worker.start_at for worker in self._workers if worker.start_at is not None]
        return max(0.0, min(due) - time.monotonic()) if due else None


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound, not listening, SO_REUSEPORT socket on host:port, after checking that nothing else
    listens there (see the module's invariants). Raises OSError (EADDRINUSE, ...)."""
    if port != 0:
        bind_socket(host, port).close()
    return bind_socket(host, port, reuse_address=False, reuse_port=True)


def _note_signal(signum: int, frame: FrameType | None) -> None:
    """Python-level handler, so that the signal reaches the wake-up pipe; `_watch` acts on it there."""


def _dies_with(supervisor_pid: int) -> Callable[[], None]:
    """Runs in the child before exec: SIGTERM it when the supervisor dies (Linux)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None

    def setup() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != supervisor_pid:  # the supervisor died before the line above
            os.kill(os.getpid(), signal.SIGTERM)

    return setup


def _name(signum: int) -> str:
    return signal.Signals(signum).name


def _exit(status: int) -> str:
    return f"was killed by {_name(-status)}" if status < 0 else f"exited with status {status}"
