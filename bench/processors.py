"""Processors on both runtimes (v8, and quickjs in the wasm sandbox) against Cloudflare's workerd
serving the same handlers, measured with wrk.

Two FFAAS processors, each saved once per runtime (code in `bench/handlers/`):
- `hello_processor.js` through `/processor/<id>/run`: `main(request)` returns the hello text;
- `logs_processor.js` through `/processor/<id>/run_with_prelude`: two `fh.log` calls (two log
  items in the conversation), then a JSON response.
Their workerd counterparts (`workerd_hello.js`, `workerd_logs.js`, `workerd.capnp`): the same
bodies, with two `console.log` calls instead of `fh.log` (workerd writes them to its stdout,
which goes to a log file).

Every handler is called once and its answer checked before it is measured (workerd: body,
content type and the two log lines in its output; FFAAS: body, content type and the two log
items of the run's conversation). Then the workerd rows (while the planes are idle, once the
control plane has stored earlier runs' conversations), workerd is stopped, and the FFAAS rows.
Without workerd (no npm, no registry, no binary for this machine) its rows are skipped and say
why; the FFAAS rows still run. The FFAAS/workerd ratios are computed by `report.py`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench import workerd
from bench.client import Response, post_json, request
from bench.context import Context, ScenarioError
from bench.conversations import wait_until_ingested
from bench.database import ConversationFile
from bench.load import CONVERSATION_HEADER
from bench.measure import measure_throughput
from bench.system import System, SystemUnderTestError
from bench.wrk import wrk_missing

PROCESSORS = "processors"
V8_HELLO = "v8 hello /run"
V8_LOGS = "v8 log+json /run_with_prelude"
WASM_HELLO = "wasm hello /run"
WASM_LOGS = "wasm log+json /run_with_prelude"
WORKERD_HELLO = "workerd hello"
WORKERD_LOGS = "workerd log+json"
FFAAS_ROWS: tuple[tuple[str, str, str, str], ...] = (
    (V8_HELLO, "v8", "hello_processor.js", "run"),
    (WASM_HELLO, "wasm", "hello_processor.js", "run"),
    (V8_LOGS, "v8", "logs_processor.js", "run_with_prelude"),
    (WASM_LOGS, "wasm", "logs_processor.js", "run_with_prelude"),
)
"""(row, runtime, handler file, entry point) of every FFAAS row."""
PAIRS: tuple[tuple[str, str, str], ...] = (
    ("hello", V8_HELLO, WORKERD_HELLO),
    ("hello", WASM_HELLO, WORKERD_HELLO),
    ("log+json", V8_LOGS, WORKERD_LOGS),
    ("log+json", WASM_LOGS, WORKERD_LOGS),
)
"""(what, FFAAS row, workerd row) compared by the FFAAS/workerd ratio, in table order."""
ROW_ORDER: tuple[str, ...] = (V8_HELLO, WASM_HELLO, WORKERD_HELLO, V8_LOGS, WASM_LOGS, WORKERD_LOGS)
FFAAS_TARGETS = [row for row, *_ in FFAAS_ROWS]

HELLO_BODY = b"Hello, world!\n"
LOGS_BODY = {"ok": True, "method": "GET"}
"""What the log+json handlers answer to wrk's (and the check's) GET."""
LOG_LINES = ("one", "two")
LOG_WAIT_S = 5.0


def handler_code(name: str) -> str:
    """The source of one handler in bench/handlers/."""
    return (workerd.HANDLERS / name).read_text()


def measure_processors(ctx: Context) -> None:
    """The processor rows of both runtimes and the workerd rows at each concurrency (see the module
    docstring)."""
    connections, results = ctx.options.connections, ctx.results
    missing = wrk_missing()
    if missing is not None:
        results.skip_rows(list(ROW_ORDER), connections, missing)
        return

    ffaas: dict[str, str] | None = None
    try:
        ffaas = _create_processors(ctx)
    except (ScenarioError, SystemUnderTestError, OSError) as exc:
        results.problems.append(f"{PROCESSORS}: FFAAS processors not measured: {exc}")
        results.skip_rows(FFAAS_TARGETS, connections, f"processors not ready: {exc}")

    _settle(ctx)
    try:
        started = workerd.start(ctx.system, ctx.say)
    except workerd.WorkerdUnavailable as exc:
        ctx.say(f"workerd rows skipped: {exc}")
        results.skip_rows([WORKERD_HELLO, WORKERD_LOGS], connections, str(exc))
    except SystemUnderTestError as exc:
        results.problems.append(f"{PROCESSORS}: workerd did not start: {exc}")
        results.skip_rows([WORKERD_HELLO, WORKERD_LOGS], connections, "workerd did not start")
    else:
        results.info["workerd"] = started.version
        try:
            _check_workerd(started)
            measure_throughput(
                ctx, {WORKERD_HELLO: started.urls["hello"] + "/", WORKERD_LOGS: started.urls["logs"] + "/"}
            )
        except ScenarioError as exc:
            results.problems.append(f"{PROCESSORS}: {exc}")
            results.skip_rows([WORKERD_HELLO, WORKERD_LOGS], connections, "workerd answered wrongly")
        finally:
            workerd.stop(ctx.system)

    if ffaas is not None:
        measure_throughput(ctx, ffaas)


def _create_processors(ctx: Context) -> dict[str, str]:
    """Saves both processors and checks one run of each; row target -> URL for wrk."""
    system = ctx.system
    if "data_plane" not in system.processes or "control_plane" not in system.processes:
        ctx.say("starting redis-server, control plane and data plane")
        system.ensure_planes()
    control, data = system.url("control_plane"), system.url("data_plane")
    urls = {}
    for target, runtime, name, route in FFAAS_ROWS:
        document = {
            "name": f"bench-{Path(name).stem}-{runtime}",
            "language": "js",
            "runtime": runtime,
            "code": handler_code(name),
        }
        created = post_json(control, "/admin/processor", document, system.admin_headers)
        if created.status != 201:
            raise ScenarioError(
                f"POST /admin/processor ({name}) answered {created.status}: {created.body[:300]!r}"
            )
        urls[target] = f"{data}/processor/{created.json()['id']}/{route}"
    ctx.say("checking one run of each processor")
    for hello_target in (V8_HELLO, WASM_HELLO):
        hello = request(data, "GET", _path(urls[hello_target]))
        _check_answer(hello_target, hello, HELLO_BODY, "text/plain")
    for logs_target in (V8_LOGS, WASM_LOGS):
        _check_logs(system, logs_target, request(data, "GET", _path(urls[logs_target])))
    return urls


def _check_logs(system: System, target: str, logs: Response) -> None:
    """The log+json answer, and the two log items of its run's conversation."""
    _check_answer(target, logs, None, "application/json")
    conversation_id = logs.headers.get(CONVERSATION_HEADER)
    if conversation_id is None:
        raise ScenarioError(f"{target}: no {CONVERSATION_HEADER} header in {sorted(logs.headers)}")
    items = request(
        system.url("control_plane"),
        "GET",
        f"/conversation/{conversation_id}/audit_item",
        headers=system.admin_headers,
    )
    if items.status != 200:
        path = f"/conversation/{conversation_id}/audit_item"
        raise ScenarioError(f"{target}: GET {path} answered {items.status}")
    logged = [item["payload"] for item in items.json() if item.get("kind") == "log"]
    if len(logged) != len(LOG_LINES) or not all(
        str(text).startswith(line) for text, line in zip(logged, LOG_LINES, strict=True)
    ):
        raise ScenarioError(
            f"{target}: expected log items starting {LOG_LINES}, the conversation has {logged}"
        )


def _check_workerd(started: workerd.Workerd) -> None:
    """One call of each workerd socket answers like its processor, and the two lines reach its log."""
    before = _log_size(started.log_path)
    hello = request(started.urls["hello"], "GET", "/")
    _check_answer(WORKERD_HELLO, hello, HELLO_BODY, "text/plain")
    logs = request(started.urls["logs"], "GET", "/")
    _check_answer(WORKERD_LOGS, logs, None, "application/json")
    deadline = time.monotonic() + LOG_WAIT_S
    while True:
        with started.log_path.open("rb") as log:
            log.seek(before)
            lines = log.read().decode(errors="replace").splitlines()
        if [line.split()[0] for line in lines if line.strip()][:2] == list(LOG_LINES):
            return
        if time.monotonic() > deadline:
            raise ScenarioError(f"{WORKERD_LOGS}: console.log lines not in {started.log_path}: {lines[:5]}")
        time.sleep(0.05)


def _check_answer(target: str, response: Response, body: bytes | None, content_type: str) -> None:
    """Status 200, the content type, and the body (`body`, or LOGS_BODY as JSON when None)."""
    if response.status != 200:
        raise ScenarioError(f"{target} answered {response.status}: {response.body[:300]!r}")
    if not response.headers.get("content-type", "").startswith(content_type):
        raise ScenarioError(
            f"{target}: content-type {response.headers.get('content-type')!r}, not {content_type}"
        )
    if body is not None:
        if response.body != body:
            raise ScenarioError(f"{target}: expected body {body!r}, got {response.body[:300]!r}")
        return
    try:
        found = json.loads(response.body)
    except ValueError:
        found = response.body[:300]
    if found != LOGS_BODY:
        raise ScenarioError(f"{target}: expected JSON {LOGS_BODY}, got {found!r}")


def _settle(ctx: Context) -> None:
    """Waits until the control plane has stored earlier runs' conversations (best effort)."""
    system = ctx.system
    if "control_plane" not in system.processes or not system.database_path.is_file():
        return
    ctx.say("waiting for the control plane to store earlier runs' conversations")
    try:
        with ConversationFile(system.database_path) as stored:
            wait_until_ingested(ctx, stored)
    except Exception as exc:  # sqlite3, redis, ScenarioError: the figures are still worth taking
        ctx.say(f"measuring anyway: {exc}")


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _path(url: str) -> str:
    """The path of an absolute http://host:port/path URL."""
    return "/" + url.split("/", 3)[3]
