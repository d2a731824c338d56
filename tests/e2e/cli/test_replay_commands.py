"""`ffaas conversation replay`, `ffaas endpoint deploy --no-activate` and `conversation show` of a replay,
against real planes.

The cluster's planes may reach 127.0.0.1 (FFAAS_OUTBOUND_ALLOW), where a local server answers the
relay processor's outbound requests (so `--live` can be told from a replay answered from the
record: the server counts what it receives). A second data plane, `cutting`, keeps only 16 bytes
of every body it records (FFAAS_MAX_CAPTURED_BODY_BYTES=16): its runs cannot be replayed
faithfully.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RedisServer
from tests.e2e.cli.conftest import Ffaas
from tests.e2e.cluster import UUID, Cluster, TargetServer
from tests.e2e.conftest import running_cluster
from tests.e2e.processes import Plane

CAPTURE_CAP = 16
RELAY = """async function main(fh, request) {
  const answer = await fh.dispatch_request(%(url)r + "/hook", {method: "POST", body: request.body});
  fh.log("relayed", answer.code);
  return {code: 200, headers: {"content-type": "application/json"},
          body: JSON.stringify({relayed: JSON.parse(answer.body).received%(extra)s})};
}
"""
DRAFT_TS = """function main(request: {body: string}): string {
  return "draft:" + request.body;
}
"""
BROKEN_TS = """function main(request: any): string {
  return request.body +;
}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    settings = {"FFAAS_OUTBOUND_ALLOW": "127.0.0.1"}
    with running_cluster(tmp_path_factory.mktemp("cli-replay"), redis_server, settings=settings) as started:
        started.start_data_plane(settings={"FFAAS_MAX_CAPTURED_BODY_BYTES": str(CAPTURE_CAP)})
        yield started


@pytest.fixture
def public(cluster: Cluster) -> Plane:
    return cluster.data_planes[0]


@pytest.fixture
def cutting(cluster: Cluster) -> Plane:
    return cluster.data_planes[1]


def test_deploy_without_activating_then_replay_a_run_against_it(
    ffaas: Ffaas, cluster: Cluster, public: Plane, examples: Path
) -> None:
    endpoint_id = cluster.create_endpoint("replay-demo")["id"]
    echo = cluster.deploy(endpoint_id, (examples / "echo.wasm").read_bytes())
    original = cluster.call(public, endpoint_id, "/orders/7?status=201", method="POST", content=b'{"n": 7}')
    original_id = original.headers["fh-conversation-id"]

    uploaded = ffaas.ok("endpoint", "deploy", "replay-demo", str(examples / "hello.wasm"), "--no-activate")

    endpoint = cluster.get_endpoint(endpoint_id).json()
    hello = endpoint["deploy_history"][-1]
    assert endpoint["active_deploy_id"] == echo["id"]
    assert cluster.call(public, endpoint_id).headers["x-ffaas-example"] == "echo"  # still served
    lines = [line.rstrip() for line in uploaded.stdout.splitlines()]
    assert lines[0] == (
        f"uploaded hello.wasm to endpoint {endpoint_id}, not active (it still runs deploy {echo['id']})"
    )
    assert f"deploy    {hello['id']}" in lines
    assert f"replay    ffaas endpoint replay {endpoint_id} --deploy {hello['id']} --last 20" in lines
    assert f"activate  ffaas endpoint rollback {endpoint_id} {hello['id']}" in lines
    again = ffaas.ok(
        "endpoint", "deploy", endpoint_id, str(examples / "hello.wasm"), "--no-activate", "--json"
    ).json()
    assert again == cluster.get_endpoint(endpoint_id).json()["deploy_history"][-1]
    assert cluster.get_endpoint(endpoint_id).json()["active_deploy_id"] == echo["id"]

    shown = ffaas.ok("conversation", "replay", original_id, "--deploy", hello["id"]).stdout

    lines = [line.rstrip() for line in shown.splitlines()]
    replay_id = re.fullmatch(rf"replay ({UUID.pattern}) of {original_id}", lines[0])
    assert replay_id is not None, lines[0]
    assert lines[1] == f"against deploy {hello['id']} of endpoint {endpoint_id}, outbound recorded"
    assert lines[2].startswith("answered 200, completed, in ")
    assert lines[3] == "differs in status, headers, body, logs"
    for expected in (
        "status    201 → 200",
        "headers",
        "          - x-ffaas-example: echo",
        "          ~ content-type: application/json → text/plain",
        "body      text",
        "          --- original",
        "          +Hello, world!",
        "logs      1 → 0 lines",
        "          -echo: POST /orders/7",
        f"the replay in full: ffaas conversation show {replay_id[1]}",
    ):
        assert expected in lines, (expected, shown)
    stored = cluster.conversation_by_id(replay_id[1])
    assert stored["replay_of"] == original_id and stored["deploy_id"] == hello["id"]

    answer = ffaas.ok("conversation", "replay", original_id, "--deploy", hello["id"], "--json").json()
    assert set(answer) == {"conversation", "diff"}
    assert answer["conversation"] == cluster.conversation_by_id(answer["conversation"]["id"])
    assert answer["diff"]["differs_in"] == ["status", "headers", "body", "logs"]
    assert (answer["diff"]["status"]["original"], answer["diff"]["status"]["replay"]) == (201, 200)

    same = ffaas.ok("conversation", "replay", original_id, "--deploy", echo["id"]).stdout
    assert "same as the original: status, outcome, headers, body, logs and outbound requests" in same
    assert "differs in" not in same


def test_a_relay_replayed_from_the_record_then_live_and_its_json_paths(
    ffaas: Ffaas, cluster: Cluster, public: Plane, tmp_path: Path
) -> None:
    with TargetServer() as target:
        processor = cluster.create_processor(RELAY % {"url": target.url, "extra": ""}, name="cli-relay")
        original = cluster.run_processor(processor["id"], method="POST", content=b"order-1", plane=public)
        assert original.status_code == 200, original.text
        original_id = original.headers["fh-conversation-id"]
        (tmp_path / "relay-v2.js").write_text(RELAY % {"url": target.url, "extra": ", version: 2"})
        updated = ffaas.ok("processor", "update", "cli-relay", str(tmp_path / "relay-v2.js"), "--json").json()
        version_2 = updated["active_version_id"]
        assert len(target.received) == 1

        recorded = ffaas.ok("conversation", "replay", original_id, "--version", version_2).stdout

        assert len(target.received) == 1, "a replay answered from the record sent a request"
        lines = [line.rstrip() for line in recorded.splitlines()]
        assert lines[1] == f"against version {version_2} of processor {processor['id']}, outbound recorded"
        assert lines[3] == "differs in body"
        body = lines.index("body      json")
        assert lines[body + 1 : body + 3] == ["          changed paths:", "            add      /version"]
        assert '          +  "version": 2' in lines
        assert "outbound" not in recorded.split("differs in body")[1]  # the recorded answer, the same

        live = ffaas.ok(
            "conversation", "replay", original_id, "--version", version_2, "--live", "--json"
        ).json()

        assert len(target.received) == 2 and target.received[1].body == b"order-1"
    conversation = live["conversation"]
    assert conversation["replay_mode"] == "live" and conversation["replay_of"] == original_id
    assert live["diff"]["differs_in"] == ["body"]
    assert [change["path"] for change in live["diff"]["body"]["changes"]] == ["/version"]

    shown = ffaas.ok("conversation", "show", conversation["id"]).stdout
    lines = [line.strip() for line in shown.splitlines()]
    assert lines[1] == f"processor cli-relay {processor['id']}  version {version_2}"
    assert lines[2] == (
        f"replay of {original_id}, outbound live  (the original: ffaas conversation show {original_id})"
    )
    first = ffaas.ok("conversation", "show", original_id).stdout
    assert f"version {processor['active_version_id']}" in first and "replay of" not in first
    replays = ffaas.ok("conversation", "list", "--replay-of", original_id, "--json").json()["conversations"]
    assert {c["id"] for c in replays} == {conversation["id"], _replay_id(recorded)}
    assert (
        "processor cli-relay (replay)" in ffaas.ok("conversation", "list", "--replay-of", original_id).stdout
    )


def test_a_draft_replays_unsaved_code_and_one_that_does_not_compile_says_where(
    ffaas: Ffaas, cluster: Cluster, public: Plane, tmp_path: Path
) -> None:
    processor = cluster.create_processor("function main(r) { return 'saved:' + r.body; }", name="cli-draft")
    original = cluster.run_processor(
        processor["id"], prelude=False, method="POST", content=b"abc", plane=public
    )
    original_id = original.headers["fh-conversation-id"]
    (tmp_path / "draft.ts").write_text(DRAFT_TS)
    (tmp_path / "broken.ts").write_text(BROKEN_TS)
    (tmp_path / "draft.py").write_text("print('no')")

    shown = ffaas.ok("conversation", "replay", original_id, "--code", str(tmp_path / "draft.ts")).stdout

    lines = [line.rstrip() for line in shown.splitlines()]
    assert lines[1] == f"against a draft (not saved) of processor {processor['id']}, outbound recorded"
    assert "          -saved:abc" in lines and "          +draft:abc" in lines
    replay_id = _replay_id(shown)
    assert "a draft (not saved)" in ffaas.ok("conversation", "show", replay_id).stdout
    saved = cluster.admin.get(f"{cluster.admin_url}/admin/processor/{processor['id']}").json()
    assert saved["version_history"] == processor["version_history"]  # nothing saved
    on_wasm = ffaas.ok(
        "conversation",
        "replay",
        original_id,
        "--code",
        str(tmp_path / "draft.ts"),
        "--runtime",
        "wasm",
        "--json",
    ).json()
    assert on_wasm["conversation"]["audit_items"][-1]["payload"]["body"] == "draft:abc"

    broken = ffaas("conversation", "replay", original_id, "--code", str(tmp_path / "broken.ts"))
    assert broken.code == 1 and broken.stdout == ""
    assert re.fullmatch(r"error: code does not compile: 2:\d+: .+ \(HTTP 400\)", broken.error_line), (
        broken.stderr
    )

    python = ffaas("conversation", "replay", original_id, "--code", str(tmp_path / "draft.py"))
    assert python.code == 2 and "cannot tell the language of draft.py" in python.error_line


def test_a_run_whose_body_was_cut_is_refused_then_replayed_when_allowed(
    ffaas: Ffaas, cluster: Cluster, cutting: Plane, echo_wasm: bytes
) -> None:
    endpoint_id = cluster.new_deployed_endpoint("cut-demo", echo_wasm)
    original = cluster.call(cutting, endpoint_id, method="POST", content=b"0123456789" * 10)
    original_id = original.headers["fh-conversation-id"]
    deploy_id = cluster.get_endpoint(endpoint_id).json()["active_deploy_id"]

    refused = ffaas("conversation", "replay", original_id, "--deploy", deploy_id)

    assert refused.code == 1 and refused.stdout == ""
    assert "was cut when it was recorded (its body of 100 bytes" in refused.error_line
    assert "FFAAS_MAX_CAPTURED_BODY_BYTES" in refused.error_line
    assert refused.error_line.endswith(
        "(HTTP 409); --allow-truncated replays it with the part that was kept"
    ), refused.error_line

    allowed = ffaas.ok("conversation", "replay", original_id, "--deploy", deploy_id, "--allow-truncated")

    assert (
        "a body was cut when recorded (FFAAS_MAX_CAPTURED_BODY_BYTES): only the kept parts were compared"
        in allowed.stdout
    )
    replayed = cluster.conversation_by_id(_replay_id(allowed.stdout))
    assert json.loads(replayed["audit_items"][-1]["payload"]["body"])["body"] == "0123456789012345"


def test_a_target_is_exactly_one_option_and_unknown_ids_are_the_apis_404(
    ffaas: Ffaas, cluster: Cluster, public: Plane, echo_wasm: bytes, tmp_path: Path
) -> None:
    endpoint_id = cluster.new_deployed_endpoint("target-demo", echo_wasm)
    original_id = cluster.call(public, endpoint_id).headers["fh-conversation-id"]
    deploy_id = cluster.get_endpoint(endpoint_id).json()["active_deploy_id"]
    missing = "00000000-0000-0000-0000-0000000000ee"
    (tmp_path / "draft.js").write_text("function main(r) { return 1; }")

    none = ffaas("conversation", "replay", original_id)
    two = ffaas("conversation", "replay", original_id, "--deploy", deploy_id, "--version", deploy_id)
    runtime = ffaas("conversation", "replay", original_id, "--deploy", deploy_id, "--runtime", "wasm")

    assert none.code == two.code == runtime.code == 2
    assert none.error_line == (
        "error: give exactly one target: --deploy DEPLOY_ID | --version VERSION_ID | --code FILE; "
        "none was given"
    )
    assert two.error_line.endswith("; --deploy and --version were given")
    assert "--runtime goes with --code" in runtime.error_line

    unknown_conversation = ffaas("conversation", "replay", missing, "--deploy", deploy_id)
    unknown_deploy = ffaas("conversation", "replay", original_id, "--deploy", missing)
    wrong_kind = ffaas("conversation", "replay", original_id, "--code", str(tmp_path / "draft.js"))

    assert unknown_conversation.code == unknown_deploy.code == wrong_kind.code == 1
    assert unknown_conversation.error_line == f"error: conversation {missing} not found (HTTP 404)"
    assert (
        unknown_deploy.error_line == f"error: deploy {missing} not found in endpoint {endpoint_id} (HTTP 404)"
    )
    assert "replay against a deploy_id, not code (HTTP 400)" in wrong_kind.error_line


def _replay_id(shown: str) -> str:
    match = re.match(rf"replay ({UUID.pattern}) of ", shown)
    assert match is not None, shown
    return match[1]


def test_a_batch_reports_a_run_it_could_not_replay_and_replays_it_when_allowed(
    ffaas: Ffaas, cluster: Cluster, public: Plane, cutting: Plane, echo_wasm: bytes
) -> None:
    endpoint_id = cluster.new_deployed_endpoint("cut-batch", echo_wasm)
    whole = cluster.call(public, endpoint_id, method="POST", content=b"short").headers["fh-conversation-id"]
    cut = cluster.call(cutting, endpoint_id, method="POST", content=b"x" * 100).headers["fh-conversation-id"]
    deploy_id = cluster.get_endpoint(endpoint_id).json()["active_deploy_id"]

    ran = ffaas.ok("endpoint", "replay", "cut-batch", "--deploy", deploy_id, "--last", "2")

    lines = [line.rstrip() for line in ran.stdout.splitlines()]
    assert "replayed 1 of 2: 1 the same, 0 differ, 1 could not be replayed" in lines
    rows = {line.split()[0]: line for line in lines if line[:36] in (whole, cut)}
    assert re.fullmatch(rf"{whole}\s+→\s+{UUID.pattern}\s+same", rows[whole])
    assert re.match(rf"{cut}\s+→\s+-\s+not replayed: .*FFAAS_MAX_CAPTURED_BODY_BYTES", rows[cut]), rows[cut]
    assert "runs whose recorded body was cut: --allow-truncated replays them with the part kept" in lines
    assert "make it active" not in ran.stdout  # the deploy is the active one

    allowed = ffaas.ok(
        "endpoint", "replay", endpoint_id, "--deploy", deploy_id, "--last", "2", "--allow-truncated", "--json"
    ).json()
    assert (allowed["replayed"], allowed["errors"]) == (2, 0)
