"""V8 for processors: supervised Node.js engine worker processes (`engines/v8/worker.js`, isolated-vm).

V8 does not run in the data plane's process: a processor that crashes V8 (one huge allocation
aborts it, whatever the heap limit) takes down one engine worker, never the data plane.

Invariants:
- `engines` worker processes run while the supervisor is started; one that dies is replaced at
  once, and every run in flight on it ends with `EngineGone` (the run is answered `engine_failed`).
- Each worker's data segment is capped by RLIMIT_DATA (`data_limit_bytes`): it counts what V8's
  heap limit does not (off-heap buffers, WebAssembly memories), so a processor cannot take the
  machine's memory either.  (RLIMIT_AS cannot be used: V8 reserves far more address space than it
  uses, and Node would not even start under a useful one.)
- A worker that served `restart_after` runs is drained (it takes no new run, its runs end
  normally) and then replaced, bounding whatever the binding leaks; no run is lost to it.
- Nothing outlives `close()` or a failed `start()`: every worker is stopped (stdin closed, which
  ends it; killed if it does not end in time) and waited for.
- The protocol is worker.js's (newline-delimited JSON over stdin/stdout); a run's messages reach
  its `EngineRun` in the order the worker wrote them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("ffaas.v8")

BUILT_WORKER = Path(__file__).resolve().parent.parent.parent / "engines" / "v8" / "worker.js"
"""worker.js in a checkout, next to the node_modules `make install` built (FFAAS_V8_ENGINE_WORKER)."""
PRELUDE = Path(__file__).resolve().parent.parent / "executors" / "js_prelude.js"
MIB = 1 << 20
MIN_ISOLATE_MIB = 8
"""isolated-vm's smallest isolate memory limit: a smaller FFAAS_MAX_MEMORY_BYTES is raised to it."""
BASE_DATA_BYTES = 256 * MIB
"""What a worker needs besides its runs' isolates: Node, isolated-vm, idle isolates and compiled code
(a started worker's data segment is ~57 MB)."""
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 2.0
LINE_LIMIT = 1 << 30
STDERR_KEPT = 4096
OUT_OF_MEMORY_SIGNS = (b"is_heap_oom = 1", b"out of memory", b"Out of memory", b"allocation failed")


class EngineUnavailable(Exception):
    """The engine workers cannot be started: the message says why and what to do."""


class EngineGone(Exception):
    """The worker running the run died: the message says how (exit status, last stderr lines)."""

    def __init__(self, how: str, *, out_of_memory: bool = False) -> None:
        super().__init__(how)
        self.out_of_memory = out_of_memory


def isolate_limit_bytes(max_memory_bytes: int) -> int:
    """The memory limit each run's isolate really has (isolated-vm counts in whole MiB, at least 8)."""
    return max(MIN_ISOLATE_MIB, max_memory_bytes // MIB) * MIB


@dataclass(frozen=True)
class EngineSettings:
    engines: int
    max_runs: int
    """Runs in flight at once (the supervisor's caller caps them): sizes each worker's memory cap."""
    max_memory_bytes: int
    restart_after: int
    worker: Path = BUILT_WORKER
    node: str = "node"

    @property
    def runs_per_engine(self) -> int:
        return math.ceil(self.max_runs / self.engines)

    @property
    def data_limit_bytes(self) -> int:
        """RLIMIT_DATA of each worker: its share of the runs, each at twice its isolate limit (a
        run can overshoot isolated-vm's limit before it is stopped), plus the worker's own base."""
        return BASE_DATA_BYTES + self.runs_per_engine * 2 * isolate_limit_bytes(self.max_memory_bytes)


@dataclass
class EngineRun:
    """One run's messages from its worker, in order: dicts of the protocol, or `EngineGone`."""

    id: int
    engine: EngineProcess
    messages: asyncio.Queue[dict[str, Any] | EngineGone] = field(default_factory=asyncio.Queue)
    over: bool = False

    async def next(self) -> dict[str, Any]:
        message = await self.messages.get()
        if isinstance(message, EngineGone):
            raise message
        if message.get("t") in ("done", "fail"):
            self.over = True
        return message

    def answer(self, ticket: int, answer_json: str) -> None:
        """Hand the answer of the run's dispatch `ticket` back to it."""
        self.engine.send({"t": "answer", "id": self.id, "ticket": ticket, "json": answer_json})


class EngineProcess:
    """One worker process: its pipes, its runs in flight, and how it ended."""

    def __init__(self, process: asyncio.subprocess.Process, serial: int) -> None:
        self.process = process
        self.serial = serial
        self.runs: dict[int, EngineRun] = {}
        self.started_runs = 0
        self.draining = False
        self.ended = asyncio.Event()
        self._stderr = b""
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def pid(self) -> int:
        return self.process.pid

    async def ready(self) -> None:
        """Wait for the worker's `ready`, then start reading it."""
        assert self.process.stdout is not None and self.process.stderr is not None
        self._tasks.append(asyncio.create_task(self._read_stderr(self.process.stderr)))
        line = await asyncio.wait_for(self.process.stdout.readline(), START_TIMEOUT_S)
        if not line:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
            raise EngineUnavailable(f"the V8 engine worker did not start: {self.how_it_ended()}")
        self._tasks.append(asyncio.create_task(self._read(self.process.stdout)))

    def send(self, message: dict[str, Any]) -> None:
        stdin = self.process.stdin
        if stdin is None or stdin.is_closing() or self.ended.is_set():
            return
        stdin.write(json.dumps(message).encode() + b"\n")

    def how_it_ended(self) -> str:
        code = self.process.returncode
        if code is None:
            how = "it stopped answering"
        elif code < 0:
            how = f"its process was killed by {signal.Signals(-code).name}"
        else:
            how = f"its process exited with status {code}"
        if self.out_of_memory:
            return how + " (V8 ran out of memory and aborted the process)"
        last = self._stderr.decode(errors="replace").strip().splitlines()[-3:]
        return how + (f" ({' | '.join(line.strip() for line in last)})" if last else "")

    @property
    def out_of_memory(self) -> bool:
        """V8 aborted the process for want of memory: an isolate at its limit it could not stop in
        time (one huge allocation), or the process at its RLIMIT_DATA."""
        return any(sign in self._stderr for sign in OUT_OF_MEMORY_SIGNS)

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        try:
            while line := await stdout.readline():
                message = json.loads(line)
                run = self.runs.get(message.get("id"))
                if run is not None:
                    run.messages.put_nowait(message)
        except Exception:
            log.exception("reading V8 engine worker %s failed", self.pid)
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
        self._end()

    async def _read_stderr(self, stderr: asyncio.StreamReader) -> None:
        while chunk := await stderr.read(65536):
            self._stderr = (self._stderr + chunk)[-STDERR_KEPT:]

    def _end(self) -> None:
        if self.ended.is_set():
            return
        self.ended.set()
        gone = EngineGone(self.how_it_ended(), out_of_memory=self.out_of_memory)
        for run in self.runs.values():
            run.messages.put_nowait(gone)

    async def stop(self) -> None:
        """End the worker (closing stdin ends it; killed if it does not) and wait for it."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, STOP_TIMEOUT_S)
        for task in self._tasks:
            task.cancel()
        self._end()


class V8Engines:
    """Supervises the engine workers of one data plane worker process."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self._engines: list[EngineProcess] = []
        self._ids = itertools.count(1)
        self._serials = itertools.count(1)
        self._closing = False
        self._started = False
        self._starting = asyncio.Lock()
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.respawned = 0
        """Workers replaced after they died (for `/status`)."""
        self.restarted = 0
        """Workers replaced after `restart_after` runs (for `/status`)."""

    @property
    def pids(self) -> list[int]:
        return [engine.pid for engine in self._engines if not engine.ended.is_set()]

    @property
    def started(self) -> bool:
        return self._started

    async def start(self) -> None:
        """Start every worker (once; a run starts them if nothing did); if one cannot start, stop
        those that did and raise `EngineUnavailable`."""
        async with self._starting:
            if self._started or self._closing:
                return
            started: list[EngineProcess] = []
            try:
                for _ in range(self.settings.engines):
                    started.append(await self._spawn())
            except BaseException:
                await asyncio.gather(*(engine.stop() for engine in started), return_exceptions=True)
                raise
            self._engines.extend(started)
            self._started = True

    async def close(self) -> None:
        self._closing = True
        self._changed.set()  # runs waiting for a worker give up
        async with self._starting:  # a start under way ends first, so its workers are stopped below
            pass
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        engines, self._engines = self._engines, []
        await asyncio.gather(*(engine.stop() for engine in engines), return_exceptions=True)

    @contextlib.asynccontextmanager
    async def run(
        self,
        code_hash: str,
        source: str,
        request_json: str,
        with_prelude: bool,
        timeout_ms: int,
        max_log_bytes: int,
    ) -> AsyncIterator[EngineRun]:
        """Start the run on the least busy worker; its messages come through the `EngineRun`.
        Leaving early (a deadline, a cancelled request) tells the worker to drop the run."""
        engine = await self._engine()
        run = EngineRun(next(self._ids), engine)
        engine.runs[run.id] = run
        engine.started_runs += 1
        message = {"t": "run", "id": run.id, "hash": code_hash, "src": source, "req": request_json}
        engine.send({**message, "pre": with_prelude, "timeout": timeout_ms, "maxLog": max_log_bytes})
        try:
            yield run
        finally:
            del engine.runs[run.id]
            if not run.over:
                engine.send({"t": "cancel", "id": run.id})
            if engine.draining and not engine.runs:
                self._in_background(self._retire(engine))

    async def _engine(self) -> EngineProcess:
        """The live, not draining worker with the fewest runs; waits while one is being replaced."""
        if not self._started:
            await self.start()
        while True:
            live = [e for e in self._engines if not e.ended.is_set() and not e.draining]
            if live:
                engine = min(live, key=lambda e: len(e.runs))
                if engine.started_runs + 1 >= self.settings.restart_after:
                    engine.draining = True
                    self._in_background(self._replace(engine, died=False))
                return engine
            if self._closing:
                raise EngineGone("the data plane is stopping")
            self._changed.clear()
            await self._changed.wait()

    async def _spawn(self) -> EngineProcess:
        settings = self.settings
        if not settings.worker.is_file():
            raise EngineUnavailable(
                f"the V8 engine worker {settings.worker} does not exist (FFAAS_V8_ENGINE_WORKER): "
                "build it with make install"
            )
        command = [
            "prlimit",
            f"--data={settings.data_limit_bytes}",
            settings.node,
            "--no-node-snapshot",
            str(settings.worker),
            str(PRELUDE),
            str(isolate_limit_bytes(settings.max_memory_bytes) // MIB),
            str(settings.runs_per_engine),  # isolates kept idle: as many as may be busy at once
        ]
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                limit=LINE_LIMIT,
                start_new_session=True,  # a Ctrl-C to the data plane is the data plane's to handle
            )
        except OSError as exc:
            raise EngineUnavailable(
                f'the V8 engine worker cannot be started ({exc}): runtime "v8" needs Node.js and '
                "engines/v8 built (make install)"
            ) from None
        engine = EngineProcess(process, next(self._serials))
        try:
            await engine.ready()
        except BaseException as exc:
            await engine.stop()
            if isinstance(exc, EngineUnavailable):
                why = f'{exc}; runtime "v8" needs engines/v8 built (make install)'
                raise EngineUnavailable(why) from None
            raise
        self._in_background(self._watch(engine))
        log.info("V8 engine worker %s started (pid %s)", engine.serial, engine.pid)
        return engine

    async def _watch(self, engine: EngineProcess) -> None:
        await engine.ended.wait()
        if not self._closing and not engine.draining:
            how = engine.how_it_ended()
            log.error("V8 engine worker %s (pid %s) died: %s", engine.serial, engine.pid, how)
            await self._replace(engine, died=True)

    async def _replace(self, old: EngineProcess, *, died: bool) -> None:
        """Start a worker in `old`'s place (retrying while it cannot start)."""
        delay = 0.05
        while not self._closing:
            try:
                new = await self._spawn()
                break
            except EngineUnavailable as exc:
                log.error("replacing V8 engine worker %s failed: %s", old.serial, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        else:
            return
        self._engines.append(new)
        if died:
            self.respawned += 1
            self._engines.remove(old)
        else:
            self.restarted += 1
            if not old.runs:
                await self._retire(old)
        self._changed.set()

    async def _retire(self, engine: EngineProcess) -> None:
        """Stop a drained worker (once its replacement is there)."""
        if engine in self._engines and any(e is not engine and not e.draining for e in self._engines):
            self._engines.remove(engine)
            await engine.stop()

    def _in_background(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
