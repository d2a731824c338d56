"""Every run becomes a conversation record on the Redis stream, before its response is sent."""

from __future__ import annotations

import base64
import re
import time
import uuid
from pathlib import Path

import redis
from starlette.testclient import TestClient

from data_plane.app import create_app
from data_plane.settings import Settings
from shared.conversations import STREAM_FIELD, ConversationRecord
from shared.keys import Keys
from tests.conftest import RedisServer
from tests.data_plane import guests
from tests.data_plane.component.conftest import Publisher

RFC3339_MICROS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def records(redis_url: str, keys: Keys) -> dict[str, ConversationRecord]:
    client = redis.Redis.from_url(redis_url)
    entries = client.xrange(keys.conversations)
    client.close()
    unpacked = (ConversationRecord.unpack(fields[STREAM_FIELD]) for _, fields in entries)
    return {record.id: record for record in unpacked}


def test_a_run_is_recorded_in_order_before_its_response(
    publisher: Publisher, settings: Settings, redis_url: str
) -> None:
    wasm = guests.prints(
        b"Content-Type: text/plain\nX-Out: 1\nStatus: 202\n\nanswer", b"first line\nsecond line\n"
    )
    endpoint_id = publisher.deploy(wasm)
    with TestClient(create_app(settings)) as client:
        response = client.post(f"/{endpoint_id}/sub?q=1", content=b"question", headers={"X-In": "a"})
        conversation_id = response.headers["fh-conversation-id"]
        # No waiting: the record is in Redis before the response was sent.
        record = records(redis_url, publisher.keys)[conversation_id]
    assert uuid.UUID(conversation_id)
    assert (record.endpoint_id, record.status, record.outcome, record.error) == (
        endpoint_id,
        202,
        "completed",
        None,
    )
    assert record.module_hash and record.deploy_id and record.duration_ms >= 0
    assert [item.kind for item in record.items] == ["request", "log", "log", "response"]
    request, first, second, final = record.items
    assert request.inc == 0 and request.request is None
    assert request.payload["method"] == "POST"
    assert request.payload["path"] == f"/{endpoint_id}/sub"
    assert request.payload["query"] == "q=1"
    assert request.payload["headers"]["x-in"] == ["a"]
    assert request.payload["body"] == "question"
    assert request.payload["version"] == "HTTP/1.1"
    assert (first.payload, second.payload) == ("first line", "second line")
    assert final.request == request.id and final.inc is None
    assert final.payload["code"] == 202
    assert final.payload["headers"]["x-out"] == ["1"]
    assert final.payload["body"] == "answer"
    assert all(RFC3339_MICROS.match(item.created_at) for item in record.items)


def test_binary_bodies_are_recorded_as_data_urls(
    publisher: Publisher, settings: Settings, redis_url: str
) -> None:
    endpoint_id = publisher.deploy(guests.echo_stdin())
    with TestClient(create_app(settings)) as client:
        response = client.post(f"/{endpoint_id}", content=b"\xff\xfe\x00binary")
    record = records(redis_url, publisher.keys)[response.headers["fh-conversation-id"]]
    expected = "data:application/octet-stream;base64," + base64.b64encode(b"\xff\xfe\x00binary").decode()
    assert record.items[0].payload["body"] == record.items[-1].payload["body"] == expected


def test_captured_bodies_over_the_cap_say_so(
    publisher: Publisher, settings: Settings, redis_url: str
) -> None:
    from dataclasses import replace

    endpoint_id = publisher.deploy(guests.echo_stdin())
    with TestClient(create_app(replace(settings, max_captured_body_bytes=100))) as client:
        response = client.post(f"/{endpoint_id}", content=b"y" * 1000)
    record = records(redis_url, publisher.keys)[response.headers["fh-conversation-id"]]
    for item in (record.items[0], record.items[-1]):
        assert item.payload["body"] == "y" * 100
        assert item.payload["body_truncated"] is True and item.payload["body_bytes"] == 1000


def test_failed_runs_record_the_limit_and_keep_guest_internals_out_of_the_response(
    publisher: Publisher, settings: Settings, redis_url: str
) -> None:
    looping = publisher.deploy(guests.loops_forever())
    trapping = publisher.deploy(guests.traps())
    with TestClient(create_app(settings)) as client:
        timeout = client.get(f"/{looping}")
        trap = client.get(f"/{trapping}")
    stored = records(redis_url, publisher.keys)
    timed_out = stored[timeout.headers["fh-conversation-id"]]
    assert (timed_out.outcome, timed_out.status) == ("timed_out", 504)
    assert timed_out.error == "run exceeded 500 ms (FFAAS_RUN_TIMEOUT_MS)"
    assert timed_out.duration_ms >= 500
    assert timed_out.items[-1].payload["code"] == 504
    trapped = stored[trap.headers["fh-conversation-id"]]
    assert trapped.outcome == "trapped"
    assert "wasm backtrace" in (trapped.error_detail or "")
    assert "backtrace" not in trap.text


def test_oversized_request_is_a_recorded_413(
    publisher: Publisher, settings: Settings, redis_url: str
) -> None:
    endpoint_id = publisher.deploy(guests.echo_stdin())
    with TestClient(create_app(settings)) as client:
        response = client.post(f"/{endpoint_id}", content=b"x" * 200_000)
    assert response.status_code == 413
    record = records(redis_url, publisher.keys)[response.headers["fh-conversation-id"]]
    assert (record.outcome, record.status) == ("request_too_large", 413)


def test_unknown_endpoint_is_not_a_run(settings: Settings, redis_url: str, key_prefix: str) -> None:
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/{uuid.uuid4()}")
    assert response.status_code == 404 and "fh-conversation-id" not in response.headers
    assert records(redis_url, Keys(key_prefix)) == {}


def test_runs_are_served_while_redis_is_down_and_recorded_once_it_is_back(
    tmp_path: Path, key_prefix: str
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.workdir.mkdir()
    server.start()
    settings = Settings(redis_url=server.url, redis_prefix=key_prefix, data_dir=tmp_path / "data")
    publisher = Publisher(server.url, Keys(key_prefix))
    endpoint_id = publisher.deploy(guests.prints(b"up"))
    try:
        with TestClient(create_app(settings)) as client:
            server.stop()
            ids = [client.get(f"/{endpoint_id}").headers["fh-conversation-id"] for _ in range(5)]
            assert client.get("/status").json()["conversation_outbox"] == 5
            server.start()
            deadline = time.monotonic() + 10
            while client.get("/status").json()["conversation_outbox"] and time.monotonic() < deadline:
                time.sleep(0.05)
        assert set(ids) <= set(records(server.url, Keys(key_prefix)))
    finally:
        publisher.client.close()
        server.stop()
