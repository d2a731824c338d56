"""Schemathesis against both running planes (real processes, real Redis), over every operation.

Each plane is fuzzed from its own `GET /openapi.json` with the settings of `schemathesis.toml`:
every check (no 5xx, status codes, content types, headers and bodies as documented, bad input
refused, auth enforced, ...), on examples of every phase (coverage, fuzzing, stateful). The data
plane goes first, with a deployed echo endpoint and a processor on each runtime for the hooks
(`hooks.py`) to aim runs at; the control plane second, since its stateful phase deletes what it
finds. After each run both planes must still be up and answering.

Bounded for `make test` (FFAAS_FUZZ_MAX_EXAMPLES examples per operation, 6 by default);
`make fuzz` runs the same tests longer (FFAAS_FUZZ_MAX_EXAMPLES and FFAAS_FUZZ_SECONDS, the time
each plane is fuzzed for) and prints Schemathesis' report. FFAAS_FUZZ_SEED makes a run repeatable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.replay_auth import replay_token
from tests.conftest import RedisServer
from tests.e2e.cluster import Cluster
from tests.e2e.conftest import running_cluster
from tests.e2e.processes import REPO

HERE = Path(__file__).parent
MAX_EXAMPLES = int(os.environ.get("FFAAS_FUZZ_MAX_EXAMPLES", "6"))
SECONDS = os.environ.get("FFAAS_FUZZ_SECONDS")
SEED = os.environ.get("FFAAS_FUZZ_SEED")
RUN_LIMIT_S = 600 if SECONDS is None else int(SECONDS) * 3 + 300
"""A run that outlives this is stuck: the test fails rather than hang the suite."""

# A processor that answers every request of both entry points: /run calls main(request), and
# /run_with_prelude main(fh, request). It logs, so conversations have items.
ANSWERS_EVERYTHING = """
async function main(first, second) {
  const request = second === undefined ? first : second;
  if (second !== undefined) first.log("fuzz", request.method);
  const body = request.method + " " + request.body.length;
  return {code: 200, headers: {"content-type": "text/plain"}, body: body};
}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("fuzz"), redis_server) as started:
        yield started


@pytest.fixture(scope="module")
def known_ids(cluster: Cluster, echo_wasm: bytes) -> dict[str, str]:
    """What the hooks aim at: a deployed endpoint, a processor per runtime, their conversations."""
    endpoint_id = cluster.new_deployed_endpoint("fuzz-echo", echo_wasm)
    processors = [
        cluster.create_processor(ANSWERS_EVERYTHING, runtime=runtime)["id"] for runtime in ("v8", "wasm")
    ]
    runs = [cluster.call(cluster.data_planes[0], endpoint_id, "/a", method="POST", content=b"x")]
    runs += [cluster.run_processor(processor_id, method="POST", content=b"y") for processor_id in processors]
    for run in runs:
        assert run.status_code == 200, run.text
    return {
        "FFAAS_FUZZ_ENDPOINT_IDS": endpoint_id,
        "FFAAS_FUZZ_PROCESSOR_IDS": ",".join(processors),
        "FFAAS_FUZZ_CONVERSATION_IDS": ",".join(run.headers["fh-conversation-id"] for run in runs),
    }


def schemathesis(
    url: str, known: dict[str, str], report: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert binary is not None, "schemathesis is not installed; run `make install`"
    command = [
        binary,
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{url}/openapi.json",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--report",
        "json",
        "--report-json-path",
        str(report),
        *extra,
    ]
    if SECONDS is not None:
        command += ["--max-time", SECONDS]
    if SEED is not None:
        command += ["--seed", SEED]
    environment = {**os.environ, **known, "NO_COLOR": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=RUN_LIMIT_S
    )


def assert_clean_run(result: subprocess.CompletedProcess[str], report: Path, cluster: Cluster) -> None:
    summary = json.loads(report.read_text()) if report.exists() else {}
    if SECONDS is not None or os.environ.get("FFAAS_FUZZ_VERBOSE"):
        print(result.stdout)  # `make fuzz` shows the whole report (pytest -s)
    assert result.returncode == 0, (
        f"schemathesis found failures:\n{result.stdout[-20000:]}\n{result.stderr[-3000:]}"
    )
    operations = summary.get("operations", {})
    assert operations.get("tested") == operations.get("total") > 0, operations
    for plane in cluster.planes():
        assert plane.running, f"{plane!r} died under the fuzzer\n{plane.describe_log(60)}"
        plane.status()  # and still answers


def test_data_plane_survives_schemathesis(
    cluster: Cluster, known_ids: dict[str, str], tmp_path: Path
) -> None:
    report = tmp_path / "data-plane.json"
    # The replay token a control plane presents, so that POST /replay is fuzzed past its door too.
    authorization = f"Authorization: Bearer {replay_token(cluster.admin_token)}"
    result = schemathesis(cluster.data_planes[0].url, known_ids, report, "--header", authorization)
    assert_clean_run(result, report, cluster)


def test_control_plane_survives_schemathesis(
    cluster: Cluster, known_ids: dict[str, str], tmp_path: Path
) -> None:
    report = tmp_path / "control-plane.json"
    result = schemathesis(
        cluster.admin_url, known_ids, report, "--header", f"Authorization: Bearer {cluster.admin_token}"
    )
    assert_clean_run(result, report, cluster)
