"""Batch replay: how many recorded runs per second a batch replays, and what it does to live latency.

- A processor that reshapes its request and relays it (to an address the default network
  policy refuses, so every original run records a refused outbound request the processor
  catches) is run `replay_runs` times; a second version of it is saved.
- Live latency alone: a probe (one keep-alive connection, one request after another) calls the
  hello endpoint for `duration_s`; p50/p99 of its calls.
- The batch: `POST /admin/processor/<id>/replay` of those runs against the second version
  (`recorded` mode: outbound answers come from the record), polled until it has finished; the
  same probe runs meanwhile. Runs/s is replayed runs over the time from the batch's 202 to the
  moment a poll first saw it finished (so it is at most one poll interval long).

The control plane runs with its default FFAAS_REPLAY_CONCURRENCY (2), which the label names.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from bench.client import Connection, post_json, request
from bench.context import Context, ScenarioError
from bench.conversations import SETTLE_TIMEOUT_S
from bench.database import ConversationFile
from bench.load import make_runs
from bench.results import Latency

REPLAY = "replay"
RUN_CONNECTIONS = 8
POLL_S = 0.02
BATCH_TIMEOUT_S = 300.0
RELAY = """async function main(fh, request) {
  const order = JSON.parse(request.body || '{}');
  try {
    await fh.dispatch_request('http://127.0.0.1:9/hook', {method: 'POST', body: JSON.stringify(order)});
  } catch (error) {
    fh.log('relay refused:', error.message);
  }
  return {code: 200, headers: {'content-type': 'application/json'}, body: {seen: order, version: %d}};
}"""


def measure_replay(ctx: Context) -> None:
    if ctx.hello_endpoint_id is None:
        ctx.results.skipped.append("batch replay: no endpoint was deployed (the probe calls it)")
        return
    system, results, count = ctx.system, ctx.results, ctx.options.replay_runs
    control, data = system.url("control_plane"), system.url("data_plane")
    headers = system.admin_headers
    fields = {"name": "bench-replay", "language": "js", "runtime": "v8", "code": RELAY % 1}
    created = post_json(control, "/admin/processor", fields, headers)
    if created.status != 201:
        raise ScenarioError(f"POST /admin/processor answered {created.status}: {created.body[:300]!r}")
    processor_id = str(created.json()["id"])
    ctx.say(f"making {count} runs of a relay processor to replay")
    runs = make_runs(data, f"/processor/{processor_id}/run_with_prelude", count, RUN_CONNECTIONS)
    if runs.failures:
        results.problems.append(f"batch replay: original runs failed: {runs.failures}")
    # The batch replays what the control plane has stored: wait for every run, or it replays fewer.
    with ConversationFile(system.database_path) as stored:
        _wait_stored(stored, runs.conversation_ids)
    saved = request(
        control,
        "PUT",
        f"/admin/processor/{processor_id}",
        _json({**fields, "code": RELAY % 2}),
        {"content-type": "application/json", **headers},
    )
    if saved.status != 200:
        raise ScenarioError(f"PUT /admin/processor/<id> answered {saved.status}: {saved.body[:300]!r}")
    version_id = str(saved.json()["active_version_id"])
    probe_path = f"/{ctx.hello_endpoint_id}"

    ctx.say(f"probing live latency alone for {ctx.options.duration_s:g} s")
    stop = threading.Event()
    threading.Timer(ctx.options.duration_s, stop.set).start()
    idle = _probe(data, probe_path, stop)

    ctx.say(f"replaying {len(runs.conversation_ids)} runs in a batch while probing")
    during: list[float] = []
    stop = threading.Event()
    prober = threading.Thread(target=lambda: during.extend(_probe(data, probe_path, stop)), name="probe")
    prober.start()
    try:
        started = time.perf_counter()
        body = {"processor_version_id": version_id, "limit": len(runs.conversation_ids)}
        accepted = post_json(control, f"/admin/processor/{processor_id}/replay", body, headers)
        if accepted.status != 202:
            raise ScenarioError(f"batch replay answered {accepted.status}: {accepted.body[:300]!r}")
        report = _until_finished(control, str(accepted.json()["id"]), headers)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        prober.join()
    if report["errors"]:
        results.problems.append(f"batch replay: {report['errors']} run(s) could not be replayed")
    if report["total"] != len(runs.conversation_ids):
        results.problems.append(
            f"batch replay: {report['total']} runs replayed, {len(runs.conversation_ids)} were made"
        )
    if not idle or not during:
        raise ScenarioError("the probe made no call (is the hello endpoint served?)")
    results.rate(
        "replay_batch",
        f"batch replay of {report['total']} runs (FFAAS_REPLAY_CONCURRENCY=2, recorded outbound)",
        report["replayed"] / elapsed,
        "runs/s",
        replayed=report["replayed"],
        differ=report["differ"],
        seconds=round(elapsed, 3),
    )
    results.latencies["replay_probe_idle"] = Latency.of("live hello latency, no batch running", idle)
    results.latencies["replay_probe_during"] = Latency.of("live hello latency during the batch", during)


def _wait_stored(stored: ConversationFile, conversation_ids: list[str]) -> None:
    """Until every one of `conversation_ids` is in the control plane's SQLite file."""
    deadline, waiting = time.monotonic() + SETTLE_TIMEOUT_S, list(conversation_ids)
    while waiting:
        found = stored.stored_among(waiting[:500])  # SQLite's parameter limit
        waiting = [one for one in waiting if one not in found]
        if waiting and time.monotonic() > deadline:
            raise ScenarioError(
                f"runs to replay not stored after {SETTLE_TIMEOUT_S:.0f} s: {len(waiting)} missing"
            )
        if waiting and not found:
            time.sleep(0.05)


def _probe(base_url: str, path: str, stop: threading.Event) -> list[float]:
    """GET `path` one call after another until `stop`; the seconds each 200 took."""
    seconds: list[float] = []
    with Connection(base_url) as connection:
        while not stop.is_set():
            started = time.perf_counter()
            response = connection.request("GET", path)
            if response.status == 200:
                seconds.append(time.perf_counter() - started)
    return seconds


def _until_finished(control: str, batch_id: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + BATCH_TIMEOUT_S
    with Connection(control) as connection:
        while True:
            report: dict[str, Any] = connection.request("GET", f"/replay/{batch_id}", headers=headers).json()
            if report["state"] != "running":
                return report
            if time.monotonic() > deadline:
                raise ScenarioError(f"batch {batch_id} still running after {BATCH_TIMEOUT_S:.0f} s")
            time.sleep(POLL_S)


def _json(document: object) -> bytes:
    return json.dumps(document).encode()
