"""Hello at the highest concurrency alone, then while a looping and a memory-bombing processor run
alongside (issue 10: "p99 at c=50 no worse while a looping and a memory-bombing processor run").

The hello targets: the hello processor on runtime v8 and on runtime wasm (`/run`), and the WAGI
hello endpoint of the deploy scenario. The neighbours, one of each kind per runtime (code in
`bench/handlers/`):
- `loop v8`, `loop wasm`: `while (true) {}`, stopped by FFAAS_RUN_TIMEOUT_MS: 504 and the JSON error
  naming the setting;
- `bomb v8`, `bomb wasm`: allocate until FFAAS_MAX_MEMORY_BYTES stops them: 500 and the JSON error
  naming the setting. What they allocate is `Options.v8_bomb` / `Options.wasm_bomb` (`BOMBS`):
  `array` grows a JS array of arrays; `typed-array` (the default on both) keeps 16 MiB typed
  arrays, which on V8 live outside its heap: only the engine workers' RLIMIT_DATA stops them (V8
  in the data plane's own process, before issue 10, could be aborted whole by them).

Every neighbour is called once and its answer checked before anything is measured. Then for each
hello target: wrk alone (the row "<target>, alone"), then wrk again while a client of our own (a
thread per neighbour connection, `Options.neighbour_connections` each) keeps calling every
neighbour, one call after another, from before the warm-up until wrk ended (the row "<target>,
with neighbours"). The client then waits for the neighbours' calls in flight, so the next
measurement starts without any. `report.py` puts the two p99s side by side (`PAIRS`) with
the target; the neighbours' status counts and whether the data plane survived (every worker
answering with the pid it had before) are a `NeighbourRun` each.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from bench.client import Connection, Response, post_json, request
from bench.context import Context, ScenarioError
from bench.measure import WAGI_HELLO, measure_throughput
from bench.processors import V8_HELLO, WASM_HELLO, handler_code
from bench.results import NeighbourRun
from bench.system import SystemUnderTestError
from bench.wrk import wrk_missing

NEIGHBOURS = "neighbours"
HELLO_TARGETS: tuple[str, ...] = (V8_HELLO, WASM_HELLO, WAGI_HELLO)
ALONE = ", alone"
ALONGSIDE = ", with neighbours"
PAIRS: tuple[tuple[str, str, str], ...] = tuple(
    (hello, hello + ALONE, hello + ALONGSIDE) for hello in HELLO_TARGETS
)
"""(hello target, row measured alone, row measured with the neighbours), in table order."""
ROW_ORDER: tuple[str, ...] = tuple(row for _, alone, alongside in PAIRS for row in (alone, alongside))

BOMBS = {"array": "bomb_array.js", "typed-array": "bomb_typed_array.js"}
"""`--v8-bomb` / `--wasm-bomb` value (`context.BOMB_KINDS`) -> the handler in bench/handlers/."""
HELLO_BODY = b"Hello, world!\n"
CALL_TIMEOUT_S = 60.0
"""How long one neighbour call may take (the data plane stops a run after 5 s by default)."""


@dataclass(frozen=True)
class Neighbour:
    name: str
    runtime: str
    handler: str
    status: int
    setting: str
    """What its JSON error must name."""


def neighbours(v8_bomb: str, wasm_bomb: str) -> tuple[Neighbour, ...]:
    return (
        Neighbour("loop v8", "v8", "loop_processor.js", 504, "FFAAS_RUN_TIMEOUT_MS"),
        Neighbour("loop wasm", "wasm", "loop_processor.js", 504, "FFAAS_RUN_TIMEOUT_MS"),
        Neighbour(f"bomb v8 ({v8_bomb})", "v8", BOMBS[v8_bomb], 500, "FFAAS_MAX_MEMORY_BYTES"),
        Neighbour(f"bomb wasm ({wasm_bomb})", "wasm", BOMBS[wasm_bomb], 500, "FFAAS_MAX_MEMORY_BYTES"),
    )


def wrong_answer(neighbour: Neighbour, response: Response) -> str | None:
    """None when `response` is the neighbour's JSON error (its status, `code`, a message naming its
    setting); else what is wrong with it."""
    if response.status != neighbour.status:
        return (
            f"{neighbour.name}: expected {neighbour.status}, got {response.status}: {response.body[:200]!r}"
        )
    try:
        document = json.loads(response.body)
    except ValueError:
        return f"{neighbour.name}: not JSON: {response.body[:200]!r}"
    message = document.get("message") if isinstance(document, dict) else None
    if document.get("code") != neighbour.status or not isinstance(message, str):
        return f"{neighbour.name}: expected {{code, message}}, got {response.body[:200]!r}"
    if neighbour.setting not in message:
        return f"{neighbour.name}: the message does not name {neighbour.setting}: {message!r}"
    return None


@dataclass
class NeighbourClient:
    """Threads calling every neighbour URL, one call after another per thread, until `stop()`."""

    base_url: str
    paths: dict[Neighbour, str]
    connections: int
    timeout_s: float
    statuses: dict[str, Counter[str]] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for neighbour, path in self.paths.items():
            self.statuses[neighbour.name] = Counter()
            for index in range(self.connections):
                thread = threading.Thread(
                    target=self._call, args=(neighbour, path), name=f"{neighbour.name}-{index}", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def _call(self, neighbour: Neighbour, path: str) -> None:
        with Connection(self.base_url, self.timeout_s) as connection:
            while not self._stopping.is_set():
                try:
                    response = connection.request("GET", path)
                except (OSError, http.client.HTTPException) as exc:
                    self._count(neighbour, type(exc).__name__, f"{neighbour.name}: {exc!r}")
                    continue
                self._count(neighbour, str(response.status), wrong_answer(neighbour, response))

    def _count(self, neighbour: Neighbour, status: str, wrong: str | None) -> None:
        with self._lock:
            self.statuses[neighbour.name][status] += 1
            if wrong is not None and len(self.wrong) < 5:
                self.wrong.append(wrong)

    def stop(self) -> None:
        """Stops calling and waits for every call in flight to be answered."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(self.timeout_s + 5)


def worker_pids(base_url: str, timeout_s: float = 30.0) -> dict[int, int]:
    """Worker index -> pid, from GET /status on fresh connections until every worker answered (the
    kernel spreads new connections over the workers)."""
    pids: dict[int, int] = {}
    deadline = time.monotonic() + timeout_s
    while True:
        status = request(base_url, "GET", "/status", timeout_s=5.0).json()
        pids[int(status["worker"])] = int(status["pid"])
        if len(pids) == int(status["workers"]):
            return pids
        if time.monotonic() > deadline:
            raise ScenarioError(f"GET /status: only workers {sorted(pids)} of {status['workers']} answered")
        time.sleep(0.01)


def measure_neighbours(ctx: Context) -> None:
    """See the module docstring."""
    options, results, system = ctx.options, ctx.results, ctx.system
    connections = max(options.connections)
    missing = wrk_missing()
    if missing is not None:
        results.skip_rows(list(ROW_ORDER), (connections,), missing)
        return
    if "data_plane" not in system.processes or "control_plane" not in system.processes:
        ctx.say("starting redis-server, control plane and data plane")
        system.ensure_planes()
    data = system.url("data_plane")
    hello_urls = _create(
        ctx, {V8_HELLO: ("v8", "hello_processor.js"), WASM_HELLO: ("wasm", "hello_processor.js")}
    )
    if ctx.hello_endpoint_id is None:
        results.skip_rows(
            [WAGI_HELLO + ALONE, WAGI_HELLO + ALONGSIDE], (connections,), "no endpoint was deployed"
        )
    else:
        hello_urls[WAGI_HELLO] = f"{data}/{ctx.hello_endpoint_id}"
    for hello, url in hello_urls.items():
        answer = request(data, "GET", url.removeprefix(data))
        if answer.status != 200 or answer.body != HELLO_BODY:
            raise ScenarioError(f"{hello} answered {answer.status}: {answer.body[:200]!r}")
    team = neighbours(options.v8_bomb, options.wasm_bomb)
    paths = {
        neighbour: url.removeprefix(data)
        for neighbour, url in zip(
            team, _create(ctx, {n.name: (n.runtime, n.handler) for n in team}).values(), strict=True
        )
    }
    ctx.say("checking one run of each neighbour")
    for neighbour, path in paths.items():
        wrong = wrong_answer(neighbour, request(data, "GET", path, timeout_s=CALL_TIMEOUT_S))
        if wrong is not None:
            raise ScenarioError(wrong)
    before = worker_pids(data)

    for hello, url in hello_urls.items():
        measure_throughput(ctx, {hello + ALONE: url}, (connections,))
        client = NeighbourClient(data, paths, options.neighbour_connections, CALL_TIMEOUT_S)
        ctx.say(
            f"neighbours: {', '.join(n.name for n in team)}, "
            f"{options.neighbour_connections} connection(s) each"
        )
        client.start()
        try:
            measure_throughput(ctx, {hello + ALONGSIDE: url}, (connections,))
        finally:
            ctx.say("waiting for the neighbours' calls in flight")
            client.stop()
        survived, detail = _survived(ctx, before)
        run = NeighbourRun(
            hello=hello,
            connections=connections,
            statuses={name: dict(counts) for name, counts in client.statuses.items()},
            expected={n.name: n.status for n in team},
            wrong_answers=list(client.wrong),
            plane_survived=survived,
            plane_detail=detail,
        )
        results.neighbours.append(run)
        if client.wrong:
            results.problems.append(f"{NEIGHBOURS} alongside {hello}: {'; '.join(client.wrong)}")
        if not survived:
            results.problems.append(
                f"{NEIGHBOURS} alongside {hello}: the data plane did not survive: {detail}"
            )
            rest = [
                row
                for target in list(hello_urls)[list(hello_urls).index(hello) + 1 :]
                for row in (target + ALONE, target + ALONGSIDE)
            ]
            if rest:
                results.skip_rows(
                    rest, (connections,), f"the data plane did not survive the neighbours alongside {hello}"
                )
            break


def _survived(ctx: Context, before: dict[int, int]) -> tuple[bool, str]:
    """Whether the data plane still runs with every worker it had (same pids), and what was found."""
    try:
        ctx.system.check_running("data_plane")
        after = worker_pids(ctx.system.url("data_plane"))
    except (SystemUnderTestError, ScenarioError, TimeoutError, OSError, http.client.HTTPException) as exc:
        return False, str(exc).splitlines()[0]
    if after != before:
        return False, f"worker pids were {before}, now {after} (a worker died and was restarted)"
    return True, f"every worker kept its pid ({len(after)} workers)"


def _create(ctx: Context, wanted: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Saves one processor per entry (key -> (runtime, handler file)); key -> its /run URL."""
    system = ctx.system
    control, data = system.url("control_plane"), system.url("data_plane")
    urls = {}
    for key, (runtime, handler) in wanted.items():
        name = "bench-neighbours-" + "".join(c if c.isalnum() else "-" for c in key)
        document = {"name": name, "language": "js", "runtime": runtime, "code": handler_code(handler)}
        created = post_json(control, "/admin/processor", document, system.admin_headers)
        if created.status != 201:
            raise ScenarioError(
                f"POST /admin/processor ({name}) answered {created.status}: {created.body[:300]!r}"
            )
        urls[key] = f"{data}/processor/{created.json()['id']}/run"
    return urls
