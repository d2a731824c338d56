"""Replay end to end: a recorded run, run again on a real data plane against another deploy, processor
version or draft, with its outbound calls answered from the record (or sent again), and the diff.

Every process is real: redis-server, the control plane (esbuild for drafts), two data planes and a
local HTTP server that processors relay to. The cluster has

- `public`: the data plane of the public URL, which runs replays (FFAAS_DATA_PLANE_URL defaults to
  the public URL), allowed to reach the local server (FFAAS_OUTBOUND_ALLOW=127.0.0.1);
- `cutting`: a data plane that keeps only 16 bytes of every body in conversations
  (FFAAS_MAX_CAPTURED_BODY_BYTES=16), whose runs cannot be replayed faithfully.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RedisServer
from tests.data_plane import guests
from tests.e2e.cluster import UUID, Cluster, TargetServer, assert_error
from tests.e2e.conftest import running_cluster
from tests.e2e.processes import Plane

CAPTURE_CAP = 16


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    settings = {"FFAAS_OUTBOUND_ALLOW": "127.0.0.1"}
    with running_cluster(tmp_path_factory.mktemp("replay"), redis_server, settings=settings) as cluster:
        cluster.start_data_plane(settings={"FFAAS_MAX_CAPTURED_BODY_BYTES": str(CAPTURE_CAP)})
        yield cluster


@pytest.fixture
def public(cluster: Cluster) -> Plane:
    return cluster.data_planes[0]


@pytest.fixture
def cutting(cluster: Cluster) -> Plane:
    return cluster.data_planes[1]


@pytest.fixture
def target() -> Iterator[TargetServer]:
    with TargetServer() as server:
        yield server


def replay(cluster: Cluster, conversation_id: str, **body: Any) -> httpx.Response:
    return cluster.admin.post(f"{cluster.admin_url}/conversation/{conversation_id}/replay", json=body)


def replayed(cluster: Cluster, conversation_id: str, **body: Any) -> dict[str, Any]:
    response = replay(cluster, conversation_id, **body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def final_response(conversation: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = conversation["audit_items"][-1]["payload"]
    return payload


def outbound_items(conversation: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(request payload, response payload) of every outbound request, in order."""
    items = conversation["audit_items"]
    responses = {item["request"]: item["payload"] for item in items if item["kind"] == "response"}
    return [
        (item["payload"], responses[item["id"]])
        for item in items
        if item["kind"] == "request" and item["inc"] > 0
    ]


def deploy_inactive(cluster: Cluster, endpoint_id: str, wasm: bytes) -> dict[str, Any]:
    response = cluster.admin.post(
        f"{cluster.admin_url}/endpoint/{endpoint_id}/deploy?activate=false", content=bytes(wasm)
    )
    assert response.status_code == 201, response.text
    deploy: dict[str, Any] = response.json()
    return deploy


def put_processor(cluster: Cluster, processor: dict[str, Any], code: str, **fields: str) -> dict[str, Any]:
    body = {key: processor[key] for key in ("name", "language", "runtime")} | fields | {"code": code}
    response = cluster.admin.put(f"{cluster.admin_url}/admin/processor/{processor['id']}", json=body)
    assert response.status_code == 200, response.text
    saved: dict[str, Any] = response.json()
    return saved


# -- endpoints -------------------------------------------------------------------------------------


def test_an_endpoint_run_replayed_against_an_inactive_deploy_that_answers_differently(
    cluster: Cluster, public: Plane, echo_wasm: bytes, hello_wasm: bytes
) -> None:
    endpoint_id = cluster.new_deployed_endpoint("replayed endpoint", echo_wasm)
    original = cluster.call(public, endpoint_id, "/orders/7?status=201", method="POST", content=b'{"n": 7}')
    assert original.status_code == 201
    echo_deploy = cluster.get_endpoint(endpoint_id).json()["active_deploy_id"]

    hello = deploy_inactive(cluster, endpoint_id, hello_wasm)

    endpoint = cluster.get_endpoint(endpoint_id).json()
    assert endpoint["active_deploy_id"] == echo_deploy
    assert [deploy["id"] for deploy in endpoint["deploy_history"]] == [echo_deploy, hello["id"]]
    assert cluster.call(public, endpoint_id).headers["x-ffaas-example"] == "echo"  # still the active one

    answer = replayed(cluster, original.headers["fh-conversation-id"], deploy_id=hello["id"])

    conversation, diff = answer["conversation"], answer["diff"]
    assert UUID.fullmatch(conversation["id"]) and conversation["id"] != original.headers["fh-conversation-id"]
    assert conversation["replay_of"] == original.headers["fh-conversation-id"]
    assert conversation["replay_mode"] == "recorded"
    assert (conversation["endpoint_id"], conversation["deploy_id"]) == (endpoint_id, hello["id"])
    assert conversation["module_hash"] == hello["hash"]
    request = conversation["audit_items"][0]["payload"]
    assert (request["method"], request["path"], request["query"], request["body"]) == (
        "POST",
        f"/{endpoint_id}/orders/7",
        "status=201",
        '{"n": 7}',
    )
    assert final_response(conversation)["body"] == "Hello, world!\n"
    assert diff["differs"] is True
    assert diff["differs_in"] == ["status", "headers", "body", "logs"]
    assert (diff["status"]["original"], diff["status"]["replay"]) == (201, 200)
    assert diff["headers"]["removed"] == {"x-ffaas-example": ["echo"]}
    assert diff["headers"]["changed"]["content-type"] == {
        "original": ["application/json"],
        "replay": ["text/plain"],
    }
    assert diff["body"]["kind"] == "text"
    assert "-{" in diff["body"]["unified"] and "+Hello, world!" in diff["body"]["unified"]
    assert diff["logs"] == {
        "differs": True,
        "original": 1,
        "replay": 0,
        "unified": "--- original\n+++ replay\n@@ -1 +0,0 @@\n-echo: POST /orders/7",
    }
    assert cluster.http.get(f"{cluster.admin_url}/conversation/{conversation['id']}").json() == conversation


def test_an_endpoint_run_replayed_against_a_deploy_that_answers_the_same(
    cluster: Cluster, public: Plane
) -> None:
    answer = b"Content-Type: application/json\n\n" + json.dumps({"total": 3, "items": [1, 2]}).encode()
    endpoint_id = cluster.new_deployed_endpoint("same answer", guests.prints(answer, b"v1\n"))
    original = cluster.call(public, endpoint_id, method="PUT", content=b"x")
    same_answer = deploy_inactive(cluster, endpoint_id, guests.prints(answer, b"v2\n"))

    diff = replayed(cluster, original.headers["fh-conversation-id"], deploy_id=same_answer["id"])["diff"]

    assert diff["differs_in"] == ["logs"]
    for part in ("status", "outcome", "headers", "body", "outbound"):
        assert diff[part]["differs"] is False, (part, diff[part])
    assert diff["body"]["kind"] == "json"
    assert diff["logs"]["unified"].endswith("-v1\n+v2")

    active = cluster.get_endpoint(endpoint_id).json()["active_deploy_id"]
    again = replayed(cluster, original.headers["fh-conversation-id"], deploy_id=active)["diff"]

    assert again["differs"] is False and again["differs_in"] == []


def test_replays_are_listed_apart_from_original_runs(
    cluster: Cluster, public: Plane, echo_wasm: bytes
) -> None:
    endpoint_id = cluster.new_deployed_endpoint("listed", echo_wasm)
    original_id = cluster.call(public, endpoint_id).headers["fh-conversation-id"]
    deploy_id = cluster.get_endpoint(endpoint_id).json()["active_deploy_id"]
    replay_id = replayed(cluster, original_id, deploy_id=deploy_id)["conversation"]["id"]

    def listed(**params: str) -> list[dict[str, Any]]:
        response = cluster.admin.get(f"{cluster.admin_url}/conversation", params=params)
        assert response.status_code == 200, response.text
        conversations: list[dict[str, Any]] = response.json()["conversations"]
        return conversations

    everything = listed(endpoint_id=endpoint_id)
    assert [c["id"] for c in everything] == [replay_id, original_id]
    assert (everything[0]["replay_of"], everything[0]["replay_mode"]) == (original_id, "recorded")
    assert (everything[1]["replay_of"], everything[1]["replay_mode"]) == (None, None)
    assert [c["id"] for c in listed(endpoint_id=endpoint_id, is_replay="false")] == [original_id]
    assert [c["id"] for c in listed(replay_of=original_id)] == [replay_id]


def test_a_deploy_of_another_endpoint_or_a_processor_target_is_refused(
    cluster: Cluster, public: Plane, echo_wasm: bytes
) -> None:
    endpoint_id = cluster.new_deployed_endpoint("mine", echo_wasm)
    other = cluster.create_endpoint("other")["id"]
    foreign = cluster.deploy(other, echo_wasm)
    original_id = cluster.call(public, endpoint_id).headers["fh-conversation-id"]

    assert_error(replay(cluster, original_id, deploy_id=foreign["id"]), 404, foreign["id"], endpoint_id)
    assert_error(replay(cluster, original_id, code="async function main() {}"), 400, "deploy_id")
    assert_error(replay(cluster, original_id), 400, "give exactly one target")
    assert_error(replay(cluster, original_id, deploy_id=foreign["id"], speed="fast"), 400, "speed")
    assert_error(cluster.http.post(f"{cluster.admin_url}/conversation/{original_id}/replay", json={}), 401)


# -- processors ------------------------------------------------------------------------------------

RELAY = """async function main(fh, request) {
  const answer = await fh.dispatch_request('%(url)s/hook', {method: 'POST', body: request.body});
  fh.log('relayed', answer.code);
  return {code: answer.code, headers: {'content-type': 'application/json'}, body: answer.body};
}"""
RELAY_V2 = """async function main(fh, request) {
  const payload = JSON.stringify({wrapped: request.body});
  const answer = await fh.dispatch_request('%(url)s/hook', {method: 'POST', body: payload});
  fh.log('relayed', answer.code);
  return {code: answer.code, headers: {'content-type': 'application/json'}, body: answer.body};
}"""

WANDERING = """async function main(fh, request) {
  try {
    await fh.dispatch_request('%(url)s/elsewhere', {method: 'GET'});
    return 'sent';
  } catch (error) {
    return {code: 502, body: 'caught: ' + error.message};
  }
}"""
FETCH_LONG = "async function main(fh) { return (await fh.dispatch_request('%s/long')).body; }"


def test_a_relay_replayed_with_recorded_outbound_sends_nothing_and_gets_the_recorded_answer(
    cluster: Cluster, public: Plane, target: TargetServer
) -> None:
    processor = cluster.create_processor(RELAY % {"url": target.url}, name="relay")
    original = cluster.run_processor(processor["id"], method="POST", content=b"ping", plane=public)
    assert original.status_code == 200 and len(target.received) == 1
    v2 = put_processor(cluster, processor, RELAY_V2 % {"url": target.url})

    answer = replayed(
        cluster, original.headers["fh-conversation-id"], processor_version_id=v2["active_version_id"]
    )

    assert len(target.received) == 1  # nothing left the machine
    conversation, diff = answer["conversation"], answer["diff"]
    assert conversation["request_processor_id"] == processor["id"]
    assert conversation["processor_version_id"] == v2["active_version_id"] != processor["active_version_id"]
    assert (conversation["replay_of"], conversation["replay_mode"]) == (
        original.headers["fh-conversation-id"],
        "recorded",
    )
    assert final_response(conversation)["body"] == original.text  # the recorded answer, relayed
    [(request, response)] = outbound_items(conversation)
    assert json.loads(request["body"]) == {"wrapped": "ping"}
    [(_, recorded)] = outbound_items(cluster.conversation(original))
    assert response == {**recorded, "body": original.text}
    assert diff["differs_in"] == ["outbound"]
    [exchange] = diff["outbound"]["requests"]
    assert exchange["changed"] == ["body"]
    assert exchange["body"]["kind"] == "text"  # "ping" is not JSON
    assert "-ping" in exchange["body"]["unified"]


def test_a_relay_replayed_live_really_sends_its_request(
    cluster: Cluster, public: Plane, target: TargetServer
) -> None:
    processor = cluster.create_processor(RELAY % {"url": target.url}, name="live relay")
    original = cluster.run_processor(processor["id"], method="POST", content=b'{"n": 1}', plane=public)
    v2 = put_processor(cluster, processor, RELAY_V2 % {"url": target.url})

    answer = replayed(
        cluster,
        original.headers["fh-conversation-id"],
        processor_version_id=v2["active_version_id"],
        outbound="live",
    )

    assert [request.body for request in target.received] == [b'{"n": 1}', b'{"wrapped":"{\\"n\\": 1}"}']
    conversation, diff = answer["conversation"], answer["diff"]
    assert conversation["replay_mode"] == "live"
    assert json.loads(final_response(conversation)["body"])["received"] == '{"wrapped":"{\\"n\\": 1}"}'
    assert diff["differs_in"] == ["body", "outbound"]
    assert diff["body"]["kind"] == "json"
    assert diff["body"]["changes"] == [{"op": "replace", "path": "/received"}]
    assert {"body", "response"} <= set(diff["outbound"]["requests"][0]["changed"])


def test_a_dispatch_the_original_never_made_is_refused_inside_the_run(
    cluster: Cluster, public: Plane, target: TargetServer
) -> None:
    processor = cluster.create_processor(RELAY % {"url": target.url}, name="wanders")
    original = cluster.run_processor(processor["id"], method="POST", content=b"x", plane=public)
    wandering = WANDERING % {"url": target.url}

    answer = replayed(cluster, original.headers["fh-conversation-id"], code=wandering)

    assert len(target.received) == 1
    conversation = answer["conversation"]
    body = final_response(conversation)["body"]
    assert body.startswith(f"caught: replay: no recorded response for GET {target.url}/elsewhere"), body
    [(request, response)] = outbound_items(conversation)
    assert request["url"] == f"{target.url}/elsewhere"
    assert "no recorded response" in response["error"]
    assert conversation["status"] == 502 and answer["diff"]["status"]["differs"] is True


def test_a_draft_replay_runs_unsaved_code_and_a_draft_that_does_not_compile_is_400(
    cluster: Cluster, public: Plane
) -> None:
    processor = cluster.create_processor(
        "function main(request) { return 'saved:' + request.body; }", name="drafted"
    )
    original = cluster.run_processor(
        processor["id"], prelude=False, method="POST", content=b"abc", plane=public
    )
    assert original.text == "saved:abc"
    draft = "function main(request: {body: string}): string {\n  return 'draft:' + request.body;\n}\n"

    answer = replayed(cluster, original.headers["fh-conversation-id"], code=draft, language="ts")

    conversation = answer["conversation"]
    assert final_response(conversation)["body"] == "draft:abc"
    assert conversation["processor_version_id"] is None
    assert conversation["request_processor_id"] == processor["id"]
    assert answer["diff"]["body"]["unified"].endswith("-saved:abc\n+draft:abc")
    stored = cluster.admin.get(f"{cluster.admin_url}/admin/processor/{processor['id']}").json()
    assert stored["version_history"] == processor["version_history"]  # nothing saved

    broken = "function main(request: any): string {\n  return request.body +;\n}\n"
    refused = replay(cluster, original.headers["fh-conversation-id"], code=broken, language="ts")
    message = assert_error(refused, 400, "code does not compile: 2:")
    assert re.match(r"code does not compile: 2:\d+: ", message), message  # line:column, as a save says


# -- bodies cut when recorded ----------------------------------------------------------------------


def test_a_request_body_cut_when_recorded_is_refused_unless_allowed(
    cluster: Cluster, cutting: Plane, echo_wasm: bytes
) -> None:
    endpoint_id = cluster.new_deployed_endpoint("cut", echo_wasm)
    body = b"0123456789" * 10
    original = cluster.call(cutting, endpoint_id, method="POST", content=body)
    assert original.status_code == 200
    original_id = original.headers["fh-conversation-id"]
    deploy_id = cluster.get_endpoint(endpoint_id).json()["active_deploy_id"]

    assert_error(
        replay(cluster, original_id, deploy_id=deploy_id), 409, "FFAAS_MAX_CAPTURED_BODY_BYTES", "100 bytes"
    )
    answer = replayed(cluster, original_id, deploy_id=deploy_id, allow_truncated=True)

    request = answer["conversation"]["audit_items"][0]["payload"]
    assert request["body"] == body[:CAPTURE_CAP].decode()
    assert json.loads(final_response(answer["conversation"])["body"])["body"] == body[:CAPTURE_CAP].decode()
    assert answer["diff"]["body"]["truncated"] is True


def test_an_outbound_response_cut_when_recorded_is_refused_unless_allowed(
    cluster: Cluster, cutting: Plane, target: TargetServer
) -> None:
    code = FETCH_LONG % target.url
    processor = cluster.create_processor(code, name="cut outbound")
    original = cluster.run_processor(processor["id"], plane=cutting)
    assert len(original.text) > CAPTURE_CAP
    original_id = original.headers["fh-conversation-id"]
    version = {"processor_version_id": processor["active_version_id"]}

    assert_error(
        replay(cluster, original_id, **version), 409, "outbound request 1", "FFAAS_MAX_CAPTURED_BODY_BYTES"
    )
    answer = replayed(cluster, original_id, **version, allow_truncated=True)

    assert len(target.received) == 1
    assert final_response(answer["conversation"])["body"] == original.text[:CAPTURE_CAP]


# -- processor versions ----------------------------------------------------------------------------


def test_processor_versions_and_rollback_served_right_after_the_answer(cluster: Cluster) -> None:
    processor = cluster.create_processor("function main(r) { return 'one'; }", name="versioned")
    second = put_processor(cluster, processor, "function main(r) { return 'two'; }")
    third = put_processor(cluster, processor, "function main(r) { return 'three'; }", name="renamed")
    url = f"{cluster.admin_url}/admin/processor/{processor['id']}"

    history = third["version_history"]
    assert [version["id"] for version in history] == [
        processor["active_version_id"],
        second["active_version_id"],
        third["active_version_id"],
    ]
    assert [version["name"] for version in history] == ["versioned", "versioned", "renamed"]
    assert all(
        set(version) == {"id", "processor_id", "name", "language", "runtime", "code_hash", "created_at"}
        for version in history
    )
    first_version = cluster.admin.get(f"{url}/version/{history[0]['id']}")
    assert first_version.json() == {**history[0], "code": "function main(r) { return 'one'; }"}
    for plane in cluster.data_planes:
        ran = cluster.run_processor(processor["id"], prelude=False, plane=plane)
        assert ran.text == "three"
        assert cluster.conversation(ran)["processor_version_id"] == history[2]["id"]

    rolled_back = cluster.admin.post(f"{url}/rollback", json={"version_id": history[0]["id"]})

    assert rolled_back.status_code == 200, rolled_back.text
    assert rolled_back.json()["active_version_id"] == history[0]["id"]
    assert (rolled_back.json()["name"], rolled_back.json()["code"]) == (
        "versioned",
        "function main(r) { return 'one'; }",
    )
    assert rolled_back.json()["version_history"] == history  # the history never changes
    assert cluster.admin.get(url).json() == rolled_back.json()
    for plane in cluster.data_planes:
        ran = cluster.run_processor(processor["id"], prelude=False, plane=plane)
        assert ran.text == "one"
        assert cluster.conversation(ran)["processor_version_id"] == history[0]["id"]
    assert_error(cluster.admin.post(f"{url}/rollback"), 400, "oldest")
    unknown = "00000000-0000-4000-8000-000000000000"
    assert_error(cluster.admin.post(f"{url}/rollback", json={"version_id": unknown}), 404, unknown)
    assert_error(cluster.admin.get(f"{url}/version/{unknown}"), 404, unknown)
    assert_error(cluster.http.post(f"{url}/rollback"), 401)


def test_the_data_plane_replay_route_needs_the_replay_token(cluster: Cluster, public: Plane) -> None:
    job = {"replay_of": "x", "outbound": "recorded"}

    assert_error(cluster.http.post(f"{public.url}/replay", json=job), 401, "FFAAS_ADMIN_TOKEN")
    wrong = {"authorization": f"Bearer {cluster.admin_token}"}  # the admin token itself is not the key
    assert_error(cluster.http.post(f"{public.url}/replay", json=job, headers=wrong), 401, "FFAAS_ADMIN_TOKEN")
