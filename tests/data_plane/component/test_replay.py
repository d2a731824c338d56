"""`POST /replay` on the data plane, in-process against a real Redis: who may call it, what a job must
hold, and how a replay runs and is recorded (processors on both runtimes)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from data_plane.app import create_app
from data_plane.settings import Settings
from shared.content_hash import content_hash
from shared.conversations import STREAM_FIELD, ConversationRecord
from shared.keys import Keys
from shared.replay_auth import replay_authorization
from tests.data_plane import guests
from tests.data_plane.component.conftest import TargetServer

TOKEN = "admin-token-of-this-test"
LOOPBACK = ("127.0.0.1", 40000)
RELAY = """async function main(fh, request) {
  const first = await fh.dispatch_request('%(url)s/a', {method: 'POST', body: request.body});
  let second;
  try {
    second = (await fh.dispatch_request('%(url)s/b')).body;
  } catch (error) {
    second = 'refused: ' + error.message;
  }
  const headers = {'x-first': first.headers['x-seen'][0]};
  return {code: first.code, headers, body: first.body + '|' + second};
}"""
FAILING = """async function main(fh) {
  try {
    await fh.dispatch_request('%s/down');
    return 'answered';
  } catch (error) {
    return 'failed: ' + error.message;
  }
}"""


@pytest.fixture(params=["v8", "wasm"])
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def guarded(settings: Settings) -> Iterator[TestClient]:
    """The data plane with FFAAS_ADMIN_TOKEN set, loopback outbound allowed, called from loopback."""
    configured = replace(settings, admin_token=TOKEN, outbound_allow="127.0.0.1", run_timeout_ms=2000)
    with TestClient(create_app(configured), client=LOOPBACK) as client:
        yield client


def records(redis_url: str, keys: Keys) -> dict[str, ConversationRecord]:
    client = redis.Redis.from_url(redis_url)
    entries = client.xrange(keys.conversations)
    client.close()
    unpacked = (ConversationRecord.unpack(fields[STREAM_FIELD]) for _, fields in entries)
    return {record.id: record for record in unpacked}


def request_of(body: str = "", path: str = "/x") -> dict[str, Any]:
    return {
        "method": "POST",
        "path": path,
        "query": "q=1",
        "headers": {"host": ["plane.test:4000"], "content-type": ["text/plain"]},
        "body": body,
        "version": "HTTP/1.1",
    }


def processor_job(code: str, runtime: str, **fields: Any) -> dict[str, Any]:
    processor_id = str(uuid.uuid4())
    return {
        "replay_of": str(uuid.uuid4()),
        "outbound": "recorded",
        "request": request_of("ping", f"/processor/{processor_id}/run_with_prelude"),
        "processor": {
            "processor_id": processor_id,
            "version_id": str(uuid.uuid4()),
            "name": "replayed",
            "language": "js",
            "runtime": runtime,
            "code_hash": content_hash(code.encode()),
            "code": code,
            "entry": "run_with_prelude",
        },
        "recorded_outbound": [],
        **fields,
    }


def post(client: TestClient, job: object) -> Any:
    return client.post("/replay", json=job, headers=replay_authorization(TOKEN))


def test_without_a_token_only_loopback_callers_may_replay(settings: Settings) -> None:
    job = processor_job("function main(r) { return 'ran'; }", "v8")
    with TestClient(create_app(settings)) as remote:  # its caller is "testclient", not loopback
        refused = remote.post("/replay", json=job)
    with TestClient(create_app(settings), client=LOOPBACK) as local:
        accepted = local.post("/replay", json=job)

    assert refused.status_code == 403
    assert refused.json()["message"].startswith("replays are accepted only from loopback addresses")
    assert "FFAAS_ADMIN_TOKEN" in refused.json()["message"]
    assert accepted.status_code == 200, accepted.text


def test_with_a_token_only_the_derived_replay_token_is_accepted(guarded: TestClient) -> None:
    job = processor_job("function main(r) { return 'ran'; }", "v8")

    missing = guarded.post("/replay", json=job)
    admin_token_itself = guarded.post("/replay", json=job, headers={"authorization": f"Bearer {TOKEN}"})
    right = post(guarded, job)

    assert (missing.status_code, admin_token_itself.status_code) == (401, 401)
    assert "FFAAS_ADMIN_TOKEN" in missing.json()["message"]
    assert missing.headers["www-authenticate"] == "Bearer"
    assert right.status_code == 200, right.text


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"outbound": "sometimes"}, "outbound must be one of recorded, live"),
        ({"processor": None}, "exactly one target"),
        ({"request": "GET /"}, "request must be an object"),
        ({"recorded_outbound": [{"method": "GET", "url": "http://x/", "response": {"code": "200"}}]}, "code"),
        ({"request": {**request_of(), "headers": {"host": "one"}}}, "request.headers.host"),
    ],
)
def test_a_malformed_job_is_400_naming_the_field(
    guarded: TestClient, change: dict[str, Any], fragment: str
) -> None:
    response = post(guarded, {**processor_job("function main(r) { return 1; }", "v8"), **change})

    assert response.status_code == 400, response.text
    assert fragment in response.json()["message"]


def test_code_that_does_not_match_its_hash_is_refused(guarded: TestClient) -> None:
    job = processor_job("function main(r) { return 1; }", "v8")
    job["processor"]["code"] = "function main(r) { return 2; }"

    response = post(guarded, job)

    assert response.status_code == 400 and "code_hash" in response.json()["message"]


def test_recorded_outbound_answers_in_order_and_refuses_what_was_not_recorded(
    runtime: str, guarded: TestClient, target: TargetServer, redis_url: str, key_prefix: str
) -> None:
    code = RELAY % {"url": target.url}
    recorded = {"code": 201, "headers": {"x-seen": ["recorded"]}, "body": "from the record"}
    job = processor_job(
        code, runtime, recorded_outbound=[{"method": "POST", "url": f"{target.url}/a", "response": recorded}]
    )

    response = post(guarded, job)

    assert response.status_code == 200, response.text
    assert target.recorded.requests == []  # nothing left the machine
    answer = response.json()
    assert answer["status"] == 201
    assert response.headers["fh-conversation-id"] == answer["conversation_id"]
    record = records(redis_url, Keys(key_prefix))[answer["conversation_id"]]
    assert (record.replay_of, record.replay_mode) == (job["replay_of"], "recorded")
    assert record.request_processor_id == job["processor"]["processor_id"]
    assert record.processor_version_id == job["processor"]["version_id"]
    final = record.items[-1].payload
    assert final["body"].startswith("from the record|refused: replay: no recorded response for GET ")
    assert final["headers"]["x-first"] == ["recorded"]
    requests = [item for item in record.items if item.kind == "request" and item.inc]
    responses = {item.request: item.payload for item in record.items if item.kind == "response"}
    assert [item.payload["url"] for item in requests] == [f"{target.url}/a", f"{target.url}/b"]
    assert responses[requests[0].id]["body"] == "from the record"
    assert "no recorded response" in responses[requests[1].id]["error"]
    assert record.items[0].payload["body"] == "ping"


def test_live_outbound_really_sends(runtime: str, guarded: TestClient, target: TargetServer) -> None:
    code = "async function main(fh, request) { return (await fh.dispatch_request('%s/live')).body; }"
    job = processor_job(code % target.url, runtime, outbound="live")

    response = post(guarded, job)

    assert response.status_code == 200, response.text
    assert [(method, path) for method, path, _, _ in target.recorded.requests] == [("GET", "/live")]


def test_a_recorded_failure_fails_the_same_way(
    guarded: TestClient, target: TargetServer, redis_url: str, key_prefix: str
) -> None:
    code = FAILING % target.url
    failure = {"method": "GET", "url": f"{target.url}/down", "error": "connection refused"}
    job = processor_job(code, "v8", recorded_outbound=[failure])

    response = post(guarded, job)

    assert response.status_code == 200, response.text
    assert target.recorded.requests == []
    record = records(redis_url, Keys(key_prefix))[response.json()["conversation_id"]]
    assert record.items[-1].payload["body"] == (
        "failed: replay: the original run got no response either: connection refused"
    )


def test_an_endpoint_replay_runs_the_module_by_hash_with_the_jobs_environment(
    guarded: TestClient, publisher: Any, redis_url: str, key_prefix: str
) -> None:
    wasm = guests.prints_env("GREETING")
    module_hash = content_hash(wasm)
    publisher.client.set(publisher.keys.module(module_hash), wasm)  # published, not routed
    endpoint_id, deploy_id = str(uuid.uuid4()), str(uuid.uuid4())
    job = {
        "replay_of": str(uuid.uuid4()),
        "outbound": "recorded",
        "request": request_of("body", f"/{endpoint_id}/sub/path"),
        "endpoint": {
            "endpoint_id": endpoint_id,
            "deploy_id": deploy_id,
            "module_hash": module_hash,
            "env": {"GREETING": "hej"},
        },
    }

    response = post(guarded, job)

    assert response.status_code == 200, response.text
    record = records(redis_url, Keys(key_prefix))[response.json()["conversation_id"]]
    assert (record.endpoint_id, record.deploy_id, record.module_hash) == (endpoint_id, deploy_id, module_hash)
    environment = record.items[-1].payload["body"]
    for variable in ("GREETING=hej", "PATH_INFO=/sub/path", "QUERY_STRING=q=1", "REQUEST_METHOD=POST"):
        assert variable in environment
    assert guarded.get(f"/{endpoint_id}").status_code == 404  # replaying routed nothing


def test_an_endpoint_replay_of_a_module_redis_lacks_is_409(guarded: TestClient) -> None:
    job = {
        "replay_of": str(uuid.uuid4()),
        "outbound": "recorded",
        "request": request_of(),
        "endpoint": {"endpoint_id": "e", "deploy_id": "d", "module_hash": "0" * 32, "env": {}},
    }

    response = post(guarded, job)

    assert response.status_code == 409 and "0" * 32 in response.json()["message"]


def test_status_counts_replays(guarded: TestClient) -> None:
    assert post(guarded, processor_job("function main(r) { return 1; }", "v8")).status_code == 200

    status = guarded.get("/status").json()

    assert (status["replays_running"], status["replays_finished"]) == (0, 1)


def test_a_job_over_max_replay_bytes_is_413_naming_the_setting(settings: Settings) -> None:
    small = replace(settings, admin_token=TOKEN, max_replay_bytes=2048)
    job = processor_job("function main(r) { return 1; }", "v8")
    job["request"]["body"] = "x" * 4096
    with TestClient(create_app(small), client=LOOPBACK) as client:
        response = post(client, job)

    assert response.status_code == 413 and "FFAAS_MAX_REPLAY_BYTES" in response.json()["message"]
