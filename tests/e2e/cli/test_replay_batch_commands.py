"""`ffaas endpoint replay`, `ffaas processor replay` and `ffaas replay show | list` against real planes.

Batches run on the control plane in the background, at most FFAAS_REPLAY_CONCURRENCY=2 replays in
flight. To see the command follow a batch while it runs, the relay processor's replays are sent
`--live` to a local server that holds each request at a gate until the test lets it through: while
the gate is shut no replay can finish, so what the command shows meanwhile is progress of a batch
still running, and what it shows after one request is let through is the next step.
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RedisServer
from tests.e2e.cli.conftest import FFAAS, Ffaas
from tests.e2e.cluster import UUID, Cluster
from tests.e2e.conftest import running_cluster

WAIT_S = 60.0
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
RELAY = """async function main(fh, request) {
  const answer = await fh.dispatch_request(%(url)r, {method: "POST", body: request.body});
  return {code: 200, body: %(prefix)r + answer.body};
}"""


class GatedServer:
    """Answers every POST with its body; once `shut()`, each request waits at the gate until the test
    lets it through (`let_through(n)`); `arrived` counts requests received while shut."""

    def __init__(self) -> None:
        self.gate = threading.Semaphore(0)
        self.gated = threading.Event()
        self.arrived = 0
        self._counting = threading.Lock()
        self.received: list[bytes] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                server.received.append(body)
                if server.gated.is_set():
                    with server._counting:
                        server.arrived += 1
                    server.gate.acquire(timeout=WAIT_S)
                self.send_response(200)
                self.send_header("connection", "close")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/relay"

    def shut(self) -> None:
        self.gated.set()

    def let_through(self, count: int) -> None:
        self.gate.release(count)

    def __enter__(self) -> GatedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.gated.clear()
        self.gate.release(100)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class Terminal:
    """`ffaas ARGS...` on a pseudo-terminal (so Rich draws its live progress bar), read as it draws."""

    def __init__(self, ffaas: Ffaas, *args: str) -> None:
        environment = {**ffaas.environment({"NO_COLOR": None}), "TERM": "xterm", "COLUMNS": "160"}
        controller, terminal = pty.openpty()
        self.process = subprocess.Popen(
            [str(FFAAS), *args], stdin=terminal, stdout=terminal, stderr=terminal, env=environment
        )
        os.close(terminal)
        self._controller = controller
        self._screen = b""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._controller, 65536)
            except OSError:  # the terminal closed: the command is done
                break
            if not chunk:
                break
            with self._lock:
                self._screen += chunk

    @property
    def text(self) -> str:
        with self._lock:
            return ANSI.sub("", self._screen.decode(errors="replace"))

    def wait_for(self, pattern: str) -> None:
        wait_until(lambda: re.search(pattern, self.text) is not None, f"{pattern!r} on the terminal")

    def finish(self) -> int:
        code = self.process.wait(timeout=WAIT_S)
        self._reader.join(WAIT_S)
        os.close(self._controller)
        return code


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    settings = {"FFAAS_OUTBOUND_ALLOW": "127.0.0.1", "FFAAS_REPLAY_CONCURRENCY": "2"}
    with running_cluster(tmp_path_factory.mktemp("cli-batch"), redis_server, settings=settings) as started:
        yield started


@pytest.fixture
def server() -> Iterator[GatedServer]:
    with GatedServer() as started:
        yield started


def wait_until(condition: Any, what: str) -> None:
    """Poll `condition()` until true; fail naming `what` after `WAIT_S` (a wait, never the assertion)."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def relay(
    cluster: Cluster, server: GatedServer, name: str, runs: int
) -> tuple[dict[str, Any], list[str], str]:
    """A relay processor, `runs` recorded runs of it (bodies "0", "1", ...), and a second version of it
    that answers differently: (the processor, the original conversation ids, the new version's id)."""
    processor = cluster.create_processor(RELAY % {"url": server.url, "prefix": "v1:"}, name=name)
    originals = [
        cluster.run_processor(processor["id"], method="POST", content=str(n).encode()).headers[
            "fh-conversation-id"
        ]
        for n in range(runs)
    ]
    fields = {
        "name": name,
        "language": "js",
        "runtime": "v8",
        "code": RELAY % {"url": server.url, "prefix": "v2:"},
    }
    saved = cluster.admin.put(f"{cluster.admin_url}/admin/processor/{processor['id']}", json=fields)
    assert saved.status_code == 200, saved.text
    return processor, originals, saved.json()["active_version_id"]


def report_of(cluster: Cluster, batch_id: str) -> dict[str, Any]:
    response = cluster.admin.get(f"{cluster.admin_url}/replay/{batch_id}")
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def test_an_endpoint_batch_reports_each_run_what_differs_and_how_to_activate(
    ffaas: Ffaas, cluster: Cluster, echo_wasm: bytes, hello_wasm: bytes
) -> None:
    endpoint_id = cluster.create_endpoint("batch-demo")["id"]
    echo = cluster.deploy(endpoint_id, echo_wasm)
    plane = cluster.data_planes[0]
    on_echo = [cluster.call(plane, endpoint_id, f"/{n}").headers["fh-conversation-id"] for n in range(2)]
    cluster.deploy(endpoint_id, hello_wasm)
    on_hello = cluster.call(plane, endpoint_id, "/2").headers["fh-conversation-id"]

    ran = ffaas.ok("endpoint", "replay", "batch-demo", "--deploy", echo["id"], "--last", "3")

    lines = [line.rstrip() for line in ran.stdout.splitlines()]
    batch = re.fullmatch(rf"batch ({UUID.pattern})  finished", lines[0])
    assert batch is not None, ran.stdout
    assert (
        lines[1]
        == f"runs of endpoint batch-demo {endpoint_id} against deploy {echo['id']}, outbound recorded"
    )
    assert lines[2].startswith("the last 3 recorded runs; started ")
    assert lines[4] == (
        "replayed 3 of 3: 2 the same, 1 differ (in headers 1, body 1, logs 1), 0 could not be replayed"
    )
    report = report_of(cluster, batch[1])
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.strip()[:36] in on_echo + [on_hello]}
    for run in report["runs"]:
        verdict = ["same"] if run["original"] in on_echo else ["differs:", "headers,", "body,", "logs"]
        assert rows[run["original"]] == ["→", run["replay"], *verdict]
    assert [run["original"] for run in report["runs"]] == [*on_echo, on_hello]  # oldest first
    assert f"make it active: ffaas endpoint rollback {endpoint_id} {echo['id']}" in lines
    differing = report["runs"][2]["replay"]
    assert f"one replay in full: ffaas conversation show {differing}" in lines
    assert "batch " in ran.stderr and "Ctrl-C stops following" in ran.stderr  # the progress went to stderr

    as_json = ffaas.ok(
        "endpoint", "replay", endpoint_id, "--deploy", echo["id"], "--last", "2", "--json"
    ).json()
    assert as_json == report_of(cluster, as_json["id"])
    assert as_json["state"] == "finished" and as_json["replayed"] == 2 and as_json["selection"]["limit"] == 2
    assert [run["original"] for run in as_json["runs"]] == [on_echo[1], on_hello]

    recent = ffaas.ok(
        "endpoint", "replay", endpoint_id, "--deploy", echo["id"], "--since", "1h", "--json"
    ).json()
    assert recent["total"] == 3 and recent["selection"]["since"].endswith("Z")
    future = ffaas.ok(
        "endpoint", "replay", endpoint_id, "--deploy", echo["id"], "--since", "2999-01-01T00:00:00Z"
    )
    assert "no recorded runs matched: nothing to replay" in future.stdout
    threw = ffaas.ok(
        "endpoint", "replay", endpoint_id, "--deploy", echo["id"], "--outcome", "threw", "--json"
    ).json()
    assert threw["total"] == 0 and threw["selection"]["outcome"] == "threw"


def test_a_processor_batch_shows_its_progress_in_a_terminal_then_the_report(
    ffaas: Ffaas, cluster: Cluster, server: GatedServer
) -> None:
    processor, originals, version_2 = relay(cluster, server, "batch-progress", 3)
    server.shut()

    terminal = Terminal(
        ffaas, "processor", "replay", "batch-progress", "--version", version_2, "--last", "3", "--live"
    )
    wait_until(lambda: server.arrived == 2, "two replays held at the gate")
    terminal.wait_for(r"replaying .* 0/3 0 differ, 0 not replayed")
    server.let_through(1)
    terminal.wait_for(r"replaying .* 1/3 1 differ, 0 not replayed")
    server.let_through(2)
    code = terminal.finish()

    text = terminal.text
    assert code == 0, text
    assert "3/3 3 differ" in text
    assert (
        f"runs of processor batch-progress {processor['id']} against version {version_2}, outbound live"
        in text
    )
    assert "replayed 3 of 3: 0 the same, 3 differ (in body 3), 0 could not be replayed" in text
    for original in originals:
        assert re.search(rf"{original}\s+→\s+{UUID.pattern}\s+differs: body", text), text
    assert "make it active" not in text  # version 2 is the active one already


def test_no_wait_prints_the_batch_id_then_replay_show_and_list_find_it(
    ffaas: Ffaas, cluster: Cluster, server: GatedServer
) -> None:
    processor, originals, version_2 = relay(cluster, server, "batch-later", 2)

    started = ffaas.ok(
        "processor", "replay", "batch-later", "--version", version_2, "--last", "2", "--no-wait"
    )

    batch_id = started.stdout.strip()
    assert UUID.fullmatch(batch_id), started.stdout
    assert f"ffaas replay show {batch_id}" in started.stderr
    waited = ffaas.ok("replay", "show", batch_id, "--wait").stdout
    assert waited.startswith(f"batch {batch_id}  finished")
    assert "replayed 2 of 2: 0 the same, 2 differ (in body 2), 0 could not be replayed" in waited
    shown = ffaas.ok("replay", "show", batch_id, "--json").json()
    assert shown == report_of(cluster, batch_id)
    assert [run["original"] for run in shown["runs"]] == originals
    assert len(server.received) == 2, "recorded mode (the default) sent requests"

    listed = ffaas.ok("replay", "list", "--processor", "batch-later").stdout
    row = next(line for line in listed.splitlines() if batch_id in line).split()
    assert row[1] == "finished" and row[3:7] == ["processor", "batch-later", "version", version_2]
    assert row[7:] == ["2/2", "0", "2", "0"]
    as_json = ffaas.ok("replay", "list", "--processor", processor["id"], "--json").json()
    expected = cluster.admin.get(
        f"{cluster.admin_url}/replay", params={"processor_id": processor["id"], "limit": 20}
    )
    assert as_json == expected.json() and as_json["batches"][0]["id"] == batch_id

    raw = ffaas.ok(
        "processor", "replay", processor["id"], "--version", version_2, "--last", "1", "--no-wait", "--json"
    )
    assert raw.json()["selection"]["limit"] == 1 and raw.json()["state"] in ("running", "finished")


def test_a_draft_batch_replays_unsaved_code_and_says_how_to_save_it(
    ffaas: Ffaas, cluster: Cluster, server: GatedServer, tmp_path: Path
) -> None:
    processor, _, _ = relay(cluster, server, "batch-draft", 2)
    draft = tmp_path / "draft.ts"
    draft.write_text("function main(fh: any, request: any): string {\n  return 'draft:' + request.body;\n}\n")
    broken = tmp_path / "broken.ts"
    broken.write_text("function main(fh: any, request: any): string {\n  return request.body +;\n}\n")

    ran = ffaas.ok(
        "processor", "replay", "batch-draft", "--code", str(draft), "--runtime", "wasm", "--last", "2"
    )

    lines = [line.rstrip() for line in ran.stdout.splitlines()]
    assert lines[1] == (
        f"runs of processor batch-draft {processor['id']} against a draft (ts, wasm), not saved, "
        "outbound recorded"
    )
    assert "replayed 2 of 2: 0 the same, 2 differ (in body 2, outbound 2), 0 could not be replayed" in lines
    assert f"save the draft: ffaas processor update {processor['id']} FILE" in lines
    versions = cluster.admin.get(f"{cluster.admin_url}/admin/processor/{processor['id']}").json()[
        "version_history"
    ]
    assert len(versions) == 2  # the processor's own two; the draft saved nowhere

    refused = ffaas("processor", "replay", processor["id"], "--code", str(broken))
    assert refused.code == 1 and refused.stdout == ""
    assert re.fullmatch(r"error: code does not compile: 2:\d+: .+ \(HTTP 400\)", refused.error_line), (
        refused.stderr
    )


def test_ctrl_c_stops_following_but_not_the_batch(
    ffaas: Ffaas, cluster: Cluster, server: GatedServer
) -> None:
    processor, originals, version_2 = relay(cluster, server, "batch-interrupted", 3)
    server.shut()
    process = subprocess.Popen(
        [str(FFAAS), "processor", "replay", processor["id"], "--version", version_2, "--live", "--last", "3"],
        env=ffaas.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    following = process.stderr.readline().decode()  # written once the batch is started and followed
    batch = re.match(rf"batch ({UUID.pattern}): replaying 3 runs", following)
    assert batch is not None, following
    wait_until(lambda: server.arrived == 2, "two replays held at the gate")

    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=WAIT_S)

    assert process.returncode == 130, err
    assert out == b"" and b"Traceback" not in err
    said = " ".join(err.decode().split())
    assert f"stopped following; batch {batch[1]} goes on in the background." in said
    assert f"Look again: ffaas replay show {batch[1]}" in said
    assert report_of(cluster, batch[1])["state"] == "running"
    server.let_through(3)
    wait_until(lambda: report_of(cluster, batch[1])["state"] != "running", "the batch to finish")
    report = report_of(cluster, batch[1])
    assert report["state"] == "finished" and report["replayed"] == 3
    assert [run["original"] for run in report["runs"]] == originals
    assert "replayed 3 of 3" in ffaas.ok("replay", "show", batch[1]).stdout


def test_unknown_batches_endpoints_and_deploys(ffaas: Ffaas, cluster: Cluster, echo_wasm: bytes) -> None:
    missing = "00000000-0000-0000-0000-0000000000fa"
    endpoint_id = cluster.new_deployed_endpoint("batch-unknowns", echo_wasm)

    batch = ffaas("replay", "show", missing)
    deploy = ffaas("endpoint", "replay", endpoint_id, "--deploy", missing)
    endpoint = ffaas("endpoint", "replay", "no-such-endpoint", "--deploy", missing)
    processor = ffaas("processor", "replay", missing, "--version", missing)
    no_target = ffaas("processor", "replay", missing)
    since = ffaas("endpoint", "replay", endpoint_id, "--deploy", missing, "--since", "yesterday")

    assert batch.code == deploy.code == endpoint.code == processor.code == 1
    assert batch.error_line == f"error: replay batch {missing} not found (HTTP 404)"
    assert deploy.error_line == f"error: deploy {missing} not found in endpoint {endpoint_id} (HTTP 404)"
    assert "no endpoint is named 'no-such-endpoint'" in endpoint.error_line
    assert processor.error_line == f"error: processor {missing} not found (HTTP 404)"
    assert no_target.code == since.code == 2
    assert (
        "give exactly one target: --version VERSION_ID | --code FILE; none was given" in no_target.error_line
    )
    assert (
        "--since wants a time such as 2026-01-09T23:45:48Z or an age such as 30m, 2h, 7d" in since.error_line
    )
    assert json.loads(ffaas.ok("replay", "list", "--endpoint", endpoint_id, "--json").stdout) == {
        "batches": []
    }
