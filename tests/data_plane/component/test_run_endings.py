"""How runs end, the same for every guest: the catch-all for the unexpected, and the bound on a record's
items.  In-process data plane, real Redis, real wasmtime, V8 and the wasm JavaScript engine."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pytest
from starlette.testclient import TestClient

from data_plane.app import create_app
from data_plane.executors import js
from data_plane.executors.wagi import WagiExecutor
from data_plane.settings import Settings
from tests.data_plane import guests
from tests.data_plane.component.conftest import Publisher, TargetServer
from tests.data_plane.component.test_conversations import records
from tests.data_plane.component.test_processors import record_of

INTERNAL = {
    "code": 500,
    "message": "internal error: the run failed unexpectedly; the data plane's log has the details",
}


@pytest.fixture(params=["v8", "wasm"])
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_an_unexpected_error_in_an_endpoint_run_is_answered_and_recorded_as_error(
    publisher: Publisher,
    settings: Settings,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint_id = publisher.deploy(guests.prints(b"Content-Type: text/plain\n\nfine"))

    async def injected_fault(self: WagiExecutor, *args: Any) -> None:
        raise RuntimeError("injected fault")

    monkeypatch.setattr(WagiExecutor, "run", injected_fault)
    with caplog.at_level(logging.ERROR, logger="ffaas.dispatch"), TestClient(create_app(settings)) as client:
        response = client.post(f"/{endpoint_id}/x", content=b"question")

    assert (response.status_code, response.json()) == (500, INTERNAL)
    record = records(redis_url, publisher.keys)[response.headers["fh-conversation-id"]]
    assert (record.outcome, record.status, record.error) == ("error", 500, INTERNAL["message"])
    assert record.error_detail == "RuntimeError: injected fault"
    assert [item.kind for item in record.items] == ["request", "response"]
    assert record.items[0].payload["body"] == "question"
    assert record.items[-1].payload["body"] == response.text
    assert record.items[-1].payload["headers"]["content-type"] == [response.headers["content-type"]]
    assert "injected fault" in caplog.text and "Traceback" in caplog.text
    assert record.id in caplog.text


def test_an_unexpected_error_in_a_processor_run_is_answered_and_recorded_as_error(
    runtime: str, publisher: Publisher, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    processor_id = publisher.processor(
        "async function main(fh, request) { fh.log('before'); return 'fine'; }", runtime=runtime
    )

    def injected_fault(result: dict[str, Any], incoming_body: bytes) -> None:
        raise KeyError("injected fault")

    monkeypatch.setattr(js, "response_from_result", injected_fault)
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/processor/{processor_id}/run_with_prelude")

    assert (response.status_code, response.json()) == (500, INTERNAL)
    record = record_of(publisher, response.headers["fh-conversation-id"])
    assert (record.outcome, record.error_detail) == ("error", "KeyError: 'injected fault'")
    assert [item.kind for item in record.items] == ["request", "log", "response"]
    assert record.items[-1].payload["body"] == response.text


def test_a_bad_base64_body_is_an_invalid_response_not_a_crash(
    runtime: str, publisher: Publisher, settings: Settings
) -> None:
    processor_id = publisher.processor(
        "async function main(fh) { fh.respond_with({body: 'data:application/octet-stream;base64,abc'}); }",
        runtime=runtime,
    )
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/processor/{processor_id}/run_with_prelude")

    assert response.status_code == 500
    assert "is not valid base64" in response.json()["message"]
    record = record_of(publisher, response.headers["fh-conversation-id"])
    assert (record.outcome, record.status) == ("invalid_response", 500)


def test_a_record_keeps_at_most_max_audit_items_and_counts_the_rest(
    runtime: str, publisher: Publisher, settings: Settings, target: TargetServer
) -> None:
    code = f"""async function main(fh, request) {{
      for (let i = 0; i < 30; i++) fh.log('line ' + i);
      for (let i = 0; i < 5; i++) await fh.dispatch_request('{target.url}/call/' + i, {{method: 'GET'}});
      return 'done';
    }}"""
    processor_id = publisher.processor(code, runtime=runtime)
    bounded = replace(settings, outbound_allow="127.0.0.1", run_timeout_ms=5000, max_audit_items=40)
    with TestClient(create_app(bounded)) as client:
        response = client.get(f"/processor/{processor_id}/run_with_prelude")

    assert (response.status_code, response.text) == (200, "done")
    record = record_of(publisher, response.headers["fh-conversation-id"])
    kinds = [(item.kind, item.inc) for item in record.items]
    # 38 places between the request and the response: 30 logs, 4 outbound requests with their answers
    assert kinds[0] == ("request", 0) and kinds[-1] == ("response", None)
    assert len(record.items) == 40
    assert [item.payload for item in record.items[1:31]] == [f"line {i}" for i in range(30)]
    assert [inc for kind, inc in kinds[31:-1] if kind == "request"] == [1, 2, 3, 4]
    kept_requests = {item.id for item in record.items if item.kind == "request"}
    assert all(item.request in kept_requests for item in record.items if item.kind == "response")
    assert record.audit_items_dropped == 2  # the 5th outbound request and its response
    assert len(target.recorded.requests) == 5, "the bound limits the record, not the run"
    assert record.items[-1].payload["body"] == "done"


def test_an_endpoints_stderr_lines_past_the_bound_are_counted(
    publisher: Publisher, settings: Settings, redis_url: str
) -> None:
    stderr = "".join(f"line {i}\n" for i in range(50)).encode()
    endpoint_id = publisher.deploy(guests.prints(b"Content-Type: text/plain\n\nok", stderr))
    with TestClient(create_app(replace(settings, max_log_bytes=10_000, max_audit_items=12))) as client:
        response = client.get(f"/{endpoint_id}")

    record = records(redis_url, publisher.keys)[response.headers["fh-conversation-id"]]
    assert [item.payload for item in record.items[1:-1]] == [f"line {i}" for i in range(10)]
    assert (len(record.items), record.audit_items_dropped) == (12, 40)
    assert record.items[-1].payload["body"] == "ok"
