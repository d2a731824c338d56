"""The control plane's side of replays, in-process against a real Redis and SQLite, with a local HTTP
server standing in for the data plane's `POST /replay` (so the job it is sent can be read, and the
data plane's failures chosen): the job, the errors, batches and their state across a restart, and
deploys stored without activation."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis

from control_plane.app import create_app
from control_plane.settings import Settings
from control_plane.storage import replay_batches as replay_batch_store
from control_plane.storage.database import open_database
from shared.conversations import ConversationRecord, captured_body, new_id, new_item
from shared.keys import Keys
from shared.replay_auth import replay_token
from tests.conftest import free_port
from tests.control_plane import wasm_modules
from tests.control_plane.conftest import create_endpoint, deploy, stored_route
from tests.control_plane.conversation_records import endpoint_record, ingest, processor_record, publish
from tests.control_plane.local_client import LocalTestClient

TOKEN = "replay-admin-token"
WAIT_S = 30.0
Answer = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


class FakeDataPlane:
    """Receives replay jobs; `answer(job)` gives the status and JSON to send back. While `holding`
    is set, each job waits for `release` first (and sets `entered`)."""

    def __init__(self, answer: Answer) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        self.holding = threading.Event()
        self.entered = threading.Event()
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                job = json.loads(self.rfile.read(int(self.headers["content-length"])))
                fake.jobs.append(job)
                fake.authorizations.append(self.headers.get("authorization"))
                if fake.holding.is_set():
                    fake.entered.set()
                    fake.release.wait(WAIT_S)
                status, body = answer(job)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def replay_record(job: dict[str, Any], *, body: str) -> ConversationRecord:
    """What a data plane would record for `job`: the request, and a final response with `body`."""
    request = new_item("request", job["request"], inc=0)
    response = new_item("response", {"code": 200, "headers": {}, "body": body}, request=request.id)
    original = endpoint_record()
    target = job.get("endpoint") or {}
    return replace(
        original,
        id=new_id(),
        items=[request, response],
        endpoint_id=target.get("endpoint_id"),
        deploy_id=target.get("deploy_id"),
        module_hash=target.get("module_hash"),
        replay_of=job["replay_of"],
        replay_mode=job["outbound"],
    )


@pytest.fixture
def fake_answers(redis_client: redis.Redis, keys: Keys) -> Answer:
    """A data plane that records each replay answering "replayed" before it answers."""

    def answer(job: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        record = replay_record(job, body="replayed")
        publish(redis_client, keys, record)
        return 200, {"conversation_id": record.id, "status": 200}

    return answer


@pytest.fixture
def fake(fake_answers: Answer) -> Iterator[FakeDataPlane]:
    plane = FakeDataPlane(fake_answers)
    yield plane
    plane.close()


@pytest.fixture
def replaying(settings: Settings, fake: FakeDataPlane) -> Settings:
    return replace(settings, data_plane_url=fake.url, admin_token=TOKEN)


@pytest.fixture
def admin(replaying: Settings) -> Iterator[LocalTestClient]:
    with LocalTestClient(create_app(replaying), headers={"authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def endpoint_run(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> tuple[str, dict[str, Any]]:
    """An endpoint with one deploy and one recorded run of it: (conversation id, deploy)."""
    endpoint = create_endpoint(client)
    deployed = deploy(client, endpoint["id"], wasm_modules.command_module(1))
    record = replace(endpoint_record(endpoint_id=endpoint["id"]), deploy_id=deployed["id"])
    ingest(client, redis_client, keys, record)
    return record.id, deployed


def test_the_job_carries_the_recorded_request_and_the_target_with_the_replay_token(
    admin: LocalTestClient, fake: FakeDataPlane, redis_client: redis.Redis, keys: Keys
) -> None:
    original_id, deployed = endpoint_run(admin, redis_client, keys)
    admin.put(f"/endpoint/{deployed['endpoint_id']}/env", json={"GREETING": "hi"})

    response = admin.post(f"/conversation/{original_id}/replay", json={"deploy_id": deployed["id"]})

    assert response.status_code == 200, response.text
    [job] = fake.jobs
    assert fake.authorizations == [f"Bearer {replay_token(TOKEN)}"]
    assert job == {
        "replay_of": original_id,
        "outbound": "recorded",
        "request": {
            "method": "POST",
            "path": "/",
            "query": "a=1",
            "headers": {"content-type": ["application/json"], "x-tag": ["1", "2"]},
            "body": '{"hello": "world"}',
            "version": "HTTP/1.1",
        },
        "recorded_outbound": [],
        "endpoint": {
            "endpoint_id": deployed["endpoint_id"],
            "deploy_id": deployed["id"],
            "module_hash": deployed["hash"],
            "env": {"GREETING": "hi"},
        },
    }
    answer = response.json()
    assert answer["conversation"]["replay_of"] == original_id
    assert answer["diff"]["body"]["unified"].endswith("-ok\n+replayed")


def test_a_processor_job_carries_the_versions_code_entry_and_recorded_exchanges(
    admin: LocalTestClient, fake: FakeDataPlane, redis_client: redis.Redis, keys: Keys
) -> None:
    code = "async function main(fh, request) { return 'v1'; }"
    processor = admin.post(
        "/admin/processor", json={"name": "p", "language": "js", "runtime": "wasm", "code": code}
    ).json()
    record = processor_record(processor_id=processor["id"])
    incoming = record.items[0]
    record.items[0] = replace(incoming, payload={**incoming.payload, "path": "/processor/p/run_with_prelude"})
    outbound = record.items[2]
    record.items[2] = replace(outbound, payload={**outbound.payload, "url": "http://127.0.0.1:9/hook"})
    ingest(admin, redis_client, keys, record)

    response = admin.post(
        f"/conversation/{record.id}/replay", json={"processor_version_id": processor["active_version_id"]}
    )

    assert response.status_code == 200, response.text
    [job] = fake.jobs
    assert job["processor"]["version_id"] == processor["active_version_id"]
    assert job["processor"]["entry"] == "run_with_prelude"
    assert job["processor"]["runtime"] == "wasm"
    assert 'return "v1"' in job["processor"]["code"]  # esbuild's output
    assert job["recorded_outbound"] == [
        {
            "method": "POST",
            "url": "http://127.0.0.1:9/hook",
            "response": {"code": 202, "headers": {}, "body": "accepted"},
        }
    ]

    live = admin.post(
        f"/conversation/{record.id}/replay",
        json={"processor_version_id": processor["active_version_id"], "outbound": "live"},
    )

    assert live.status_code == 200, live.text
    assert fake.jobs[1]["outbound"] == "live" and fake.jobs[1]["recorded_outbound"] == []


def test_an_unknown_conversation_is_404(admin: LocalTestClient) -> None:
    unknown = new_id()

    response = admin.post(f"/conversation/{unknown}/replay", json={"deploy_id": new_id()})

    assert response.json() == {"code": 404, "message": f"conversation {unknown} not found"}


@pytest.mark.parametrize(
    ("status", "body", "expected", "fragments"),
    [
        (
            401,
            {"code": 401, "message": "wrong replay token"},
            502,
            ["wrong replay token", "FFAAS_ADMIN_TOKEN"],
        ),
        (409, {"code": 409, "message": "module 00 is missing"}, 409, ["module 00 is missing"]),
        (500, {"code": 500, "message": "internal error"}, 502, ["refused the replay with 500"]),
    ],
)
def test_data_plane_refusals_are_passed_on_or_named(
    settings: Settings,
    redis_client: redis.Redis,
    keys: Keys,
    status: int,
    body: dict[str, Any],
    expected: int,
    fragments: list[str],
) -> None:
    plane = FakeDataPlane(lambda job: (status, body))
    try:
        with LocalTestClient(create_app(replace(settings, data_plane_url=plane.url))) as client:
            original_id, deployed = endpoint_run(client, redis_client, keys)
            response = client.post(f"/conversation/{original_id}/replay", json={"deploy_id": deployed["id"]})
    finally:
        plane.close()

    assert response.status_code == expected, response.text
    for fragment in fragments:
        assert fragment in response.json()["message"]


def test_no_data_plane_answering_is_503_naming_the_setting(
    settings: Settings, redis_client: redis.Redis, keys: Keys
) -> None:
    nowhere = replace(settings, data_plane_url=f"http://127.0.0.1:{free_port()}")
    with LocalTestClient(create_app(nowhere)) as client:
        original_id, deployed = endpoint_run(client, redis_client, keys)
        response = client.post(f"/conversation/{original_id}/replay", json={"deploy_id": deployed["id"]})

    assert response.status_code == 503
    assert "FFAAS_DATA_PLANE_URL" in response.json()["message"]


def test_a_cut_request_body_is_409_unless_allowed(
    admin: LocalTestClient, fake: FakeDataPlane, redis_client: redis.Redis, keys: Keys
) -> None:
    endpoint = create_endpoint(admin)
    deployed = deploy(admin, endpoint["id"], wasm_modules.command_module(2))
    record = endpoint_record(endpoint_id=endpoint["id"])
    cut = replace(record.items[0], payload={**record.items[0].payload, **captured_body(b"x" * 40, 10)})
    record.items[0] = cut
    ingest(admin, redis_client, keys, record)
    url = f"/conversation/{record.id}/replay"

    refused = admin.post(url, json={"deploy_id": deployed["id"]})
    allowed = admin.post(url, json={"deploy_id": deployed["id"], "allow_truncated": True})

    assert refused.status_code == 409
    assert "FFAAS_MAX_CAPTURED_BODY_BYTES" in refused.json()["message"]
    assert '"allow_truncated": true' in refused.json()["message"]
    assert allowed.status_code == 200, allowed.text
    assert [job["request"]["body"] for job in fake.jobs] == ["x" * 10]


def test_a_failing_batch_reports_each_runs_error(
    settings: Settings, redis_client: redis.Redis, keys: Keys
) -> None:
    nowhere = replace(settings, data_plane_url=f"http://127.0.0.1:{free_port()}")
    with LocalTestClient(create_app(nowhere)) as client:
        original_id, deployed = endpoint_run(client, redis_client, keys)
        started = client.post(
            f"/endpoint/{deployed['endpoint_id']}/replay", json={"deploy_id": deployed["id"]}
        )
        assert started.status_code == 202, started.text
        report = wait_for_batch(client, started.json()["id"])

    assert (report["state"], report["total"], report["replayed"], report["errors"]) == ("finished", 1, 0, 1)
    [run] = report["runs"]
    assert run["original"] == original_id and run["replay"] is None
    assert "FFAAS_DATA_PLANE_URL" in run["error"]


def test_a_batch_running_when_the_control_plane_stops_is_interrupted_and_more_batches_wait(
    replaying: Settings, fake: FakeDataPlane, redis_client: redis.Redis, keys: Keys
) -> None:
    fake.holding.set()
    limited = replace(replaying, replay_max_batches=1)
    headers = {"authorization": f"Bearer {TOKEN}"}
    with LocalTestClient(create_app(limited), headers=headers) as client:
        _, deployed = endpoint_run(client, redis_client, keys)
        url = f"/endpoint/{deployed['endpoint_id']}/replay"
        started = client.post(url, json={"deploy_id": deployed["id"]})
        assert fake.entered.wait(WAIT_S)
        second = client.post(url, json={"deploy_id": deployed["id"]})
        assert second.status_code == 503
        assert "FFAAS_REPLAY_MAX_BATCHES" in second.json()["message"]
        assert second.headers["retry-after"] == "5"
        assert client.get(f"/replay/{started.json()['id']}").json()["state"] == "running"
    fake.release.set()

    with LocalTestClient(create_app(limited), headers=headers) as client:
        report = client.get(f"/replay/{started.json()['id']}").json()
        listed = client.get("/replay", params={"endpoint_id": deployed["endpoint_id"]}).json()

    assert report["state"] == "interrupted"
    assert [batch["state"] for batch in listed["batches"]] == ["interrupted"]


def wait_for_batch(client: LocalTestClient, batch_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        report: dict[str, Any] = client.get(f"/replay/{batch_id}").json()
        if report["state"] != "running":
            return report
        assert time.monotonic() < deadline, report
        time.sleep(0.02)


def test_a_deploy_stored_without_activation_changes_no_route(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    endpoint = create_endpoint(client)
    active = deploy(client, endpoint["id"], wasm_modules.command_module(1))
    inactive_module = wasm_modules.command_module(2)

    stored = client.post(f"/endpoint/{endpoint['id']}/deploy?activate=false", content=inactive_module)
    refused = client.post(f"/endpoint/{endpoint['id']}/deploy?activate=maybe", content=inactive_module)

    assert stored.status_code == 201, stored.text
    assert refused.json() == {"code": 400, "message": "activate must be true or false, got 'maybe'"}
    shown = client.get(f"/endpoint/{endpoint['id']}").json()
    assert shown["active_deploy_id"] == active["id"]
    assert shown["deploy_history"] == [active, stored.json()]
    assert stored_route(redis_client, keys, endpoint["id"]).deploy_id == active["id"]
    assert redis_client.get(keys.module(stored.json()["hash"])) == inactive_module
    rolled = client.post(f"/endpoint/{endpoint['id']}/rollback", json={"deploy_id": stored.json()["id"]})
    assert rolled.json()["active_deploy_id"] == stored.json()["id"]


async def test_a_batch_a_crashed_control_plane_left_running_reads_as_interrupted(settings: Settings) -> None:
    db = await open_database(settings.database_path)
    report = {"id": new_id(), "created_at": "2024-01-09T23:45:48.562721Z", "state": "running", "runs": []}
    await replay_batch_store.insert_batch(db, {**report, "endpoint_id": "e"}, keep=10)
    await db.close()

    with LocalTestClient(create_app(settings)) as client:
        shown = client.get(f"/replay/{report['id']}")

    assert shown.status_code == 200
    assert shown.json()["state"] == "interrupted"


def test_draft_fields_go_with_code_only_and_are_never_silently_dropped(
    admin: LocalTestClient, fake: FakeDataPlane, redis_client: redis.Redis, keys: Keys
) -> None:
    """Found by schemathesis: `language`/`runtime` beside a version were ignored, and "" or 0 beside
    code meant "the processor's"; both are refused now, and the data plane gets no job."""
    code = "async function main(fh, request) { return 'v1'; }"
    processor = admin.post(
        "/admin/processor", json={"name": "p", "language": "js", "runtime": "v8", "code": code}
    ).json()
    record = processor_record(processor_id=processor["id"])
    ingest(admin, redis_client, keys, record)
    version = processor["active_version_id"]

    beside_version = admin.post(
        f"/conversation/{record.id}/replay", json={"processor_version_id": version, "runtime": "wasm"}
    )
    empty_language = admin.post(
        f"/admin/processor/{processor['id']}/replay", json={"code": code, "language": ""}
    )

    assert beside_version.status_code == 400
    assert beside_version.json()["message"] == (
        "runtime may only come with code (a draft), not with processor_version_id"
    )
    assert empty_language.status_code == 400
    assert "language must be one of js, ts" in empty_language.json()["message"]
    assert fake.jobs == []
