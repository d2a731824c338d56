"""No processor code takes the data plane down, on either runtime (issue 10, "Contained").

Every bomb is stopped at the run's limits with a JSON error naming the limit and its setting, its
conversation is recorded with the outcome that says why, and other runs are served while it runs
and after it.  The memory limit is measured: the peak resident memory (VmHWM, reset before the
bomb) of the process the bomb ran in (a V8 engine worker, or the data plane itself for wasm) stays
under the cap.  Real node/isolated-vm, real wasmtime, real Redis, a real local HTTP server.
"""

from __future__ import annotations

import http.server
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from data_plane.app import create_app
from data_plane.runtime.v8_engines import EngineSettings
from data_plane.settings import Settings
from tests.data_plane.component.conftest import Publisher, TargetServer
from tests.data_plane.component.test_processors import record_of, wait_until

MIB = 1 << 20
MEMORY = 32 * MIB
TIMEOUT_MS = 1000
V8_RUNS = 2
V8_ENGINES = 2
"""Two engine workers: a bomb that kills its worker must not take the run sent during it along."""


@dataclass(frozen=True)
class Expected:
    status: int
    outcome: str | tuple[str, ...]  # one of these
    says: str  # in the JSON error's message


OOM = Expected(500, "out_of_memory", "of 32.0 MiB (FFAAS_MAX_MEMORY_BYTES)")
TIMEOUT = Expected(504, "timed_out", f"run exceeded {TIMEOUT_MS} ms (FFAAS_RUN_TIMEOUT_MS)")
# V8 aborts its process on an allocation that takes its heap far past the limit at once, whatever
# the limit: the engine worker dies and is replaced, and the run is answered saying so, naming the limit.
ABORTED = Expected(500, "engine_failed", "memory limit of 32.0 MiB (FFAAS_MAX_MEMORY_BYTES)")
# A string of 16 MiB made at once in a heap of 32: V8 stops it at the limit or aborts, as it happens.
OOM_OR_ABORTED = Expected(500, ("out_of_memory", "engine_failed"), "32.0 MiB (FFAAS_MAX_MEMORY_BYTES)")
STACK = Expected(500, "threw", "the processor failed: RangeError: Maximum call stack size exceeded")

# name: (the bomb, as statements in an async main, and what it gets on V8 and on wasm)
BOMBS: dict[str, tuple[str, Expected, Expected]] = {
    "huge single allocation": ("new Array(2e9).fill(1);", ABORTED, OOM),
    "typed arrays": ("const kept = []; for (;;) kept.push(new Float64Array(1 << 20));", OOM, OOM),
    "ArrayBuffer": ("const kept = []; for (;;) kept.push(new ArrayBuffer(16 << 20));", OOM, OOM),
    "SharedArrayBuffer": ("const kept = []; for (;;) kept.push(new SharedArrayBuffer(16 << 20));", OOM, OOM),
    "WebAssembly.Memory": (
        "const kept = []; for (;;) { const memory = new WebAssembly.Memory({initial: 256}); "
        "new Uint8Array(memory.buffer).fill(1); kept.push(memory); }",
        OOM,
        # quickjs has no WebAssembly: the bomb cannot even start.
        Expected(500, "threw", "the processor failed: ReferenceError: WebAssembly is not defined"),
    ),
    # Doubled by concatenation a string is a tree of halves: it reaches the engine's longest string
    # long before the memory limit, and the run fails on that (uncaught, as the engine says it).
    "string doubling": (
        "let s = 'x'; for (;;) s += s;",
        Expected(500, "threw", "the processor failed: RangeError: Invalid string length"),
        Expected(500, "threw", "the processor failed: InternalError: string too long"),
    ),
    "flat string doubling": ("let s = 'x'; for (;;) s = (s + s).toLowerCase();", OOM_OR_ABORTED, OOM),
    "regex bomb": ("/^(a+)+$/.test('a'.repeat(40) + 'b');", TIMEOUT, TIMEOUT),
    "deep recursion": ("const down = (n) => down(n + 1) + 1; down(0);", STACK, STACK),
    "infinite loop": ("for (;;) {}", TIMEOUT, TIMEOUT),
    "endless microtask chain": ("for (;;) await null;", TIMEOUT, TIMEOUT),
    "promise that never settles": (
        "await new Promise(() => {});",
        TIMEOUT,
        # quickjs sees that nothing is left that could settle it, and says so at once.
        Expected(500, "never_settled", "never"),
    ),
}


@pytest.fixture
def contained(settings: Settings) -> Settings:
    return replace(
        settings,
        outbound_allow="127.0.0.1",
        run_timeout_ms=TIMEOUT_MS,
        max_memory_bytes=MEMORY,
        v8_runs=V8_RUNS,
        v8_engines=V8_ENGINES,
        wasm_processor_runs=4,
    )


def status_of(path: str) -> dict[str, int]:
    fields = {}
    for line in Path(path).read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current resident size (Linux: 5 > clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def engine_pids(client: TestClient) -> list[int]:
    return list(client.get("/status").json()["v8_engine_pids"])


@pytest.mark.parametrize("runtime", ["v8", "wasm"])
@pytest.mark.parametrize("bomb", list(BOMBS))
def test_a_bomb_is_stopped_at_its_limit_recorded_and_the_plane_serves_on(
    bomb: str, runtime: str, publisher: Publisher, contained: Settings, target: TargetServer
) -> None:
    code, on_v8, on_wasm = BOMBS[bomb]
    expected = on_v8 if runtime == "v8" else on_wasm
    started = f"await fh.dispatch_request('{target.url}/bombing');"
    js = f"async function main(fh, r) {{ {started} {code} return 'x'; }}"
    bombing = publisher.processor(js, runtime=runtime)
    fine = publisher.processor("function main(r) { return 'fine'; }", runtime=runtime)
    answers: list[Any] = []
    # The time bombs meet a short time limit; the others a long one, so that only memory stops them
    # (V8 may take a second or more of garbage collection to give up on a heap at its limit).
    time_bomb = expected.outcome == "timed_out"
    timeout_ms = TIMEOUT_MS if time_bomb else 20 * TIMEOUT_MS
    with TestClient(create_app(replace(contained, run_timeout_ms=timeout_ms))) as client:
        assert client.get(f"/processor/{fine}/run").text == "fine"  # the runtime is up and warm
        # The process the bomb runs in, and its cap: an engine worker's RLIMIT_DATA on V8; the
        # data plane's own growth on wasm (the engine's memory is the run's, at most MEMORY).
        pids = engine_pids(client) if runtime == "v8" else [os.getpid()]
        before = {pid: status_of(f"/proc/{pid}/status")["VmRSS"] for pid in pids}
        for pid in pids:
            reset_peak(pid)
        caller = threading.Thread(
            target=lambda: answers.append(client.get(f"/processor/{bombing}/run_with_prelude"))
        )
        caller.start()
        wait_until(lambda: len(target.recorded.requests) == 1, "the bomb to start")
        during = client.get(f"/processor/{fine}/run")  # sent while the bomb runs (or just after)
        caller.join()
        peaks = {
            pid: status_of(f"/proc/{pid}/status")["VmHWM"] for pid in pids if Path(f"/proc/{pid}").exists()
        }
        after = client.get(f"/processor/{fine}/run")
        assert client.get("/status").json()["status"] == "ok"
    (answer,) = answers
    assert (during.status_code, during.text) == (200, "fine")
    assert (after.status_code, after.text) == (200, "fine")
    assert answer.status_code == expected.status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert expected.says in answer.json()["message"], answer.json()
    record = record_of(publisher, answer.headers["fh-conversation-id"])
    outcomes = expected.outcome if isinstance(expected.outcome, tuple) else (expected.outcome,)
    assert record.outcome in outcomes and record.status == expected.status
    if runtime == "v8":
        cap = EngineSettings(V8_ENGINES, V8_RUNS, MEMORY, 1).data_limit_bytes
        for pid, peak in peaks.items():
            assert peak <= cap, (
                f"engine worker {pid} peaked at {peak / MIB:.0f} MiB, over its {cap / MIB:.0f} MiB cap"
            )
    else:
        grown = peaks[os.getpid()] - before[os.getpid()]
        assert grown <= MEMORY + 64 * MIB, f"the data plane grew by {grown / MIB:.0f} MiB running the bomb"


def test_a_killed_engine_worker_answers_its_runs_engine_failed_and_is_replaced(
    publisher: Publisher, contained: Settings, target: TargetServer
) -> None:
    started = f"await fh.dispatch_request('{target.url}/waiting');"
    js = f"async function main(fh, r) {{ {started} await new Promise(() => {{}}); }}"
    waiting = publisher.processor(js, runtime="v8")
    fine = publisher.processor("function main(r) { return 'fine'; }", runtime="v8")
    answers: list[Any] = []
    with TestClient(create_app(replace(contained, run_timeout_ms=60_000, v8_engines=1))) as client:
        assert client.get(f"/processor/{fine}/run").text == "fine"
        (pid,) = engine_pids(client)
        caller = threading.Thread(
            target=lambda: answers.append(client.get(f"/processor/{waiting}/run_with_prelude"))
        )
        caller.start()
        wait_until(lambda: len(target.recorded.requests) == 1, "the run to be in the engine")
        os.kill(pid, signal.SIGKILL)
        caller.join()
        after = client.get(f"/processor/{fine}/run")
        status = client.get("/status").json()
    (answer,) = answers
    assert answer.status_code == 500
    message = answer.json()["message"]
    assert message.startswith(
        "the JavaScript engine failed while the run was in it: its process was killed by SIGKILL"
    )
    record = record_of(publisher, answer.headers["fh-conversation-id"])
    assert record.outcome == "engine_failed"
    assert (after.status_code, after.text) == (200, "fine")
    assert status["v8_engines_respawned"] == 1 and status["v8_engine_pids"] != [pid]


class HoldingServer:
    """A local HTTP server that holds every request until `release()`; `arrived` counts them."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.arrived = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.arrived += 1
                server.released.wait(30)
                self.send_response(200)
                self.send_header("content-length", "4")
                self.end_headers()
                self.wfile.write(b"done")

            def log_message(self, *args: object) -> None:
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.release()
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def holding() -> Iterator[HoldingServer]:
    server = HoldingServer()
    yield server
    server.close()


def held_processor(publisher: Publisher, holding: HoldingServer) -> str:
    js = f"async function main(fh, r) {{ return (await fh.dispatch_request('{holding.url}/hold')).body; }}"
    return publisher.processor(js, runtime="v8")


def in_thread(client: TestClient, path: str, into: list[Any]) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.append(client.get(path)))
    thread.start()
    return thread


def test_v8_runs_past_the_cap_queue_and_past_the_queue_are_503_overloaded(
    publisher: Publisher, contained: Settings, holding: HoldingServer
) -> None:
    held = held_processor(publisher, holding)
    settings = replace(contained, run_timeout_ms=30_000, v8_runs=1, v8_queue=1, v8_engines=1)
    first: list[Any] = []
    queued: list[Any] = []
    with TestClient(create_app(settings)) as client:
        running = in_thread(client, f"/processor/{held}/run_with_prelude", first)
        wait_until(lambda: holding.arrived == 1, "the first run to hold the only V8 run slot")
        waiting = in_thread(client, f"/processor/{held}/run_with_prelude", queued)
        wait_until(lambda: client.get("/status").json()["v8_processor_queue"] == 1, "the second run to queue")
        refused = client.get(f"/processor/{held}/run_with_prelude")
        assert holding.arrived == 1  # the queued run waits for the slot, not for the server
        holding.release()
        running.join()
        waiting.join()
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["message"] == (
        "all 1 V8 processor runs are busy and 1 more are queued (FFAAS_V8_RUNS, FFAAS_V8_QUEUE); "
        "try again shortly"
    )
    assert record_of(publisher, refused.headers["fh-conversation-id"]).outcome == "overloaded"
    assert [(r.status_code, r.text) for r in first + queued] == [(200, "done"), (200, "done")]


def test_an_engine_worker_is_replaced_after_its_runs_without_losing_one(
    publisher: Publisher, contained: Settings, holding: HoldingServer
) -> None:
    held = held_processor(publisher, holding)
    fine = publisher.processor("function main(r) { return 'fine'; }", runtime="v8")
    settings = replace(contained, run_timeout_ms=30_000, v8_engines=1, v8_engine_restart_runs=3)
    first: list[Any] = []
    with TestClient(create_app(settings)) as client:
        (old,) = engine_pids(client)
        running = in_thread(client, f"/processor/{held}/run_with_prelude", first)  # run 1, in flight
        wait_until(lambda: holding.arrived == 1, "the held run to be in the engine")
        # Run 3 is the worker's last: it still runs there; run 4 goes to its replacement.
        answers = [client.get(f"/processor/{fine}/run") for _ in range(4)]
        assert old in engine_pids(client)  # drained, not stopped: the held run is still in it
        holding.release()
        running.join()
        wait_until(lambda: old not in engine_pids(client), "the drained worker to be stopped")
        status = client.get("/status").json()
    assert [(r.status_code, r.text) for r in answers] == [(200, "fine")] * 4
    assert [(r.status_code, r.text) for r in first] == [(200, "done")]
    assert status["v8_engines_restarted"] >= 1 and old not in status["v8_engine_pids"]


def test_the_engine_workers_end_with_the_data_plane(publisher: Publisher, contained: Settings) -> None:
    fine = publisher.processor("function main(r) { return 'fine'; }", runtime="v8")
    with TestClient(create_app(contained)) as client:  # a V8 processor exists: started with the plane
        pids = engine_pids(client)
        assert len(pids) == V8_ENGINES
        assert client.get(f"/processor/{fine}/run").text == "fine"
    assert [pid for pid in pids if Path(f"/proc/{pid}").exists()] == []


def test_a_missing_engine_worker_is_a_500_saying_how_to_build_it(
    publisher: Publisher, contained: Settings, tmp_path: Path
) -> None:
    on_v8 = publisher.processor("function main(r) { return 'x'; }", runtime="v8")
    in_wasm = publisher.processor("function main(r) { return 'wasm works'; }", runtime="wasm")
    missing = tmp_path / "no-worker.js"
    with TestClient(create_app(replace(contained, v8_engine_worker=missing))) as client:
        response = client.get(f"/processor/{on_v8}/run")
        unaffected = client.get(f"/processor/{in_wasm}/run")
    assert response.status_code == 500
    message = response.json()["message"]
    assert str(missing) in message and "FFAAS_V8_ENGINE_WORKER" in message and "make install" in message
    assert record_of(publisher, response.headers["fh-conversation-id"]).outcome == "runtime_unavailable"
    assert unaffected.text == "wasm works"
