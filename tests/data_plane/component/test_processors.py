"""Processors through the data plane's HTTP surface: the fh-http contract, recorded, on both runtimes
(V8, and quickjs in the wasm sandbox): every test runs once per runtime."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from data_plane.app import create_app
from data_plane.settings import Settings
from shared.conversations import STREAM_FIELD, ConversationRecord
from tests.data_plane.component.conftest import Publisher, TargetServer


@pytest.fixture(params=["v8", "wasm"])
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def record_of(publisher: Publisher, conversation_id: str) -> ConversationRecord:
    client = redis.Redis.from_url(publisher_url(publisher))
    try:
        for _, fields in client.xrange(publisher.keys.conversations):
            record = ConversationRecord.unpack(fields[STREAM_FIELD])
            if record.id == conversation_id:
                return record
    finally:
        client.close()
    raise AssertionError(f"conversation {conversation_id} not recorded")


def publisher_url(publisher: Publisher) -> str:
    kwargs = publisher.client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Wait (never assert) for `condition`, failing only after a generous deadline."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def allow_loopback(settings: Settings) -> Settings:
    return replace(settings, outbound_allow="127.0.0.1", run_timeout_ms=2000)


def test_run_returns_mains_string_with_200(runtime: str, publisher: Publisher, settings: Settings) -> None:
    processor_id = publisher.processor(
        "function main(request) { return 'hello ' + request.method; }", runtime=runtime
    )
    with TestClient(create_app(settings)) as client:
        response = client.post(f"/processor/{processor_id}/run")
    assert (response.status_code, response.text) == (200, "hello POST")
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["fh-conversation-id"]


def test_request_object_echo(runtime: str, publisher: Publisher, settings: Settings) -> None:
    processor_id = publisher.processor(
        "async function main(request) { return {code: 200, body: request}; }", runtime=runtime
    )
    with TestClient(create_app(settings)) as client:
        response = client.put(
            f"/processor/{processor_id}/run?a=1",
            content=b'{"x": 1}',
            headers={"User-Agent": "tester/1", "X-Custom": "c", "Content-Type": "application/json"},
        )
    echoed = response.json()
    assert echoed["method"] == "PUT"
    assert echoed["path"] == f"/processor/{processor_id}/run"
    assert echoed["query"] == "a=1"
    assert echoed["headers"]["user-agent"] == ["tester/1"]
    assert echoed["headers"]["x-custom"] == ["c"]
    assert json.loads(echoed["body"]) == {"x": 1}
    assert echoed["version"] == "HTTP/1.1"


def test_response_object_sets_status_headers_and_body(
    runtime: str, publisher: Publisher, settings: Settings
) -> None:
    js = """function main(r) {
      return {code: 418, headers: {'X-Tea': 'yes', 'Set-Cookie': ['a=1', 'b=2']}, body: 'short and stout'};
    }"""
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/processor/{processor_id}/run")
    assert (response.status_code, response.text) == (418, "short and stout")
    assert response.headers["x-tea"] == "yes"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]


def test_logs_are_recorded_in_order_with_console_too(
    runtime: str, publisher: Publisher, settings: Settings
) -> None:
    js = """async function main(fh, r) {
      fh.log('first'); console.log('second', {n: 2}); fh.log(3); return 'ok';
    }"""
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/processor/{processor_id}/run_with_prelude")
    record = record_of(publisher, response.headers["fh-conversation-id"])
    assert record.request_processor_id == processor_id and record.endpoint_id is None
    assert [(item.kind, item.payload) for item in record.items[1:-1]] == [
        ("log", "first"),
        ("log", 'second {"n":2}'),
        ("log", "3"),
    ]
    assert record.items[-1].kind == "response" and record.items[-1].payload["body"] == "ok"


def test_respond_with_and_get_request(runtime: str, publisher: Publisher, settings: Settings) -> None:
    js = """async function main(fh, request) {
      const r = fh.get_request();
      const body = JSON.stringify({m: r.method});
      fh.respond_with({code: 202, headers: {'content-type': 'application/json'}, body});
    }"""
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(settings)) as client:
        response = client.delete(f"/processor/{processor_id}/run_with_prelude")
    assert (response.status_code, response.json()) == (202, {"m": "DELETE"})


def test_without_a_response_the_incoming_body_is_returned(
    runtime: str, publisher: Publisher, settings: Settings
) -> None:
    processor_id = publisher.processor(
        "async function main(fh, request) { fh.log('nothing to say'); }", runtime=runtime
    )
    with TestClient(create_app(settings)) as client:
        response = client.post(f"/processor/{processor_id}/run_with_prelude", content=b"echo me")
    assert (response.status_code, response.text) == (200, "echo me")


def test_dispatch_sends_the_real_request_and_is_recorded(
    runtime: str, publisher: Publisher, settings: Settings, target: TargetServer
) -> None:
    js = f"""async function main(fh, request) {{
      fh.log('before');
      const answer = await fh.dispatch_request('{target.url}/hook?x=1', {{
        method: 'POST', headers: {{'X-Relay': 'ffaas', 'Content-Type': 'application/json'}},
        body: JSON.stringify({{relayed: JSON.parse(request.body)}})}});
      fh.log('after ' + answer.code);
      return {{code: 200, body: JSON.parse(answer.body)}};
    }}"""
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(allow_loopback(settings))) as client:
        response = client.post(f"/processor/{processor_id}/run_with_prelude", content=b'{"order": 7}')
    assert response.status_code == 200, response.text
    method, path, headers, body = target.recorded.requests[0]
    assert (method, path) == ("POST", "/hook?x=1")
    assert headers["x-relay"] == "ffaas" and json.loads(body) == {"relayed": {"order": 7}}
    assert response.json()["body"] == body.decode()
    record = record_of(publisher, response.headers["fh-conversation-id"])
    kinds = [(item.kind, item.inc) for item in record.items]
    assert kinds == [
        ("request", 0),
        ("log", None),
        ("request", 1),
        ("response", None),
        ("log", None),
        ("response", None),
    ]
    outbound, answered = record.items[2], record.items[3]
    assert outbound.payload["method"] == "POST" and outbound.payload["path"] == "/hook"
    assert outbound.payload["query"] == "x=1" and outbound.payload["headers"]["x-relay"] == ["ffaas"]
    assert answered.request == outbound.id and answered.payload["code"] == 200
    assert record.items[-1].request == record.items[0].id


def test_parallel_dispatches_are_numbered_in_call_order(
    runtime: str, publisher: Publisher, settings: Settings, target: TargetServer
) -> None:
    js = f"""async function main(fh, request) {{
      const [a, b] = await Promise.all([
        fh.dispatch_request('{target.url}/a'),
        fh.dispatch_request('{target.url}/created/b', {{method: 'PUT', body: 'b'}})]);
      return a.code + ' ' + b.code;
    }}"""
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(allow_loopback(settings))) as client:
        response = client.get(f"/processor/{processor_id}/run_with_prelude")
    assert response.text == "200 201"
    record = record_of(publisher, response.headers["fh-conversation-id"])
    requests = [item for item in record.items if item.kind == "request" and item.inc]
    assert [(item.inc, item.payload["path"]) for item in requests] == [(1, "/a"), (2, "/created/b")]


def test_default_response_is_the_last_dispatched_body(
    runtime: str, publisher: Publisher, settings: Settings, target: TargetServer
) -> None:
    js = f"""async function main(fh, r) {{
      await fh.dispatch_request('{target.url}/last', {{method: 'POST', body: 'z'}});
    }}"""
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(allow_loopback(settings))) as client:
        response = client.post(f"/processor/{processor_id}/run_with_prelude", content=b"incoming")
    assert response.status_code == 200 and json.loads(response.text)["path"] == "/last"


def test_forbidden_outbound_target_rejects_and_is_recorded(
    runtime: str, publisher: Publisher, settings: Settings, target: TargetServer
) -> None:
    js = f"""async function main(fh, r) {{
      try {{ await fh.dispatch_request('{target.url}/secret'); }}
      catch (error) {{ return 'refused: ' + error.message; }}
    }}"""
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/processor/{processor_id}/run_with_prelude")
    assert response.text.startswith("refused: request to ") and "loopback" in response.text
    assert "FFAAS_OUTBOUND_ALLOW" in response.text
    assert target.recorded.requests == []
    record = record_of(publisher, response.headers["fh-conversation-id"])
    failure = record.items[2]
    assert failure.kind == "response" and "loopback" in failure.payload["error"]


def test_nothing_leaks_between_runs(runtime: str, publisher: Publisher, settings: Settings) -> None:
    js = """function main(r) {
      const seen = String(globalThis.leaked) + ' ' + String([].polluted);
      globalThis.leaked = 'yes';
      Array.prototype.polluted = 1;
      return seen;
    }"""
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(settings)) as client:
        answers = [client.get(f"/processor/{processor_id}/run").text for _ in range(3)]
    assert answers == ["undefined undefined"] * 3


def test_thrown_error_is_500_with_message_and_stack_in_the_conversation(
    runtime: str, publisher: Publisher, settings: Settings
) -> None:
    processor_id = publisher.processor(
        "function main(r) { throw new TypeError('bad input'); }", runtime=runtime
    )
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/processor/{processor_id}/run")
    assert response.status_code == 500
    assert response.json() == {"code": 500, "message": "the processor failed: TypeError: bad input"}
    record = record_of(publisher, response.headers["fh-conversation-id"])
    assert record.outcome == "threw" and "at main" in (record.error_detail or "")


def test_unhandled_rejection_is_500(runtime: str, publisher: Publisher, settings: Settings) -> None:
    processor_id = publisher.processor(
        "async function main(r) { await null; throw new Error('later'); }", runtime=runtime
    )
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/processor/{processor_id}/run")
    assert response.status_code == 500 and response.json()["message"] == "the processor failed: Error: later"


def test_syntax_error_is_500_naming_it(runtime: str, publisher: Publisher, settings: Settings) -> None:
    processor_id = publisher.processor("function main(r) { return ; ; } }", runtime=runtime)
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/processor/{processor_id}/run")
    assert response.status_code == 500 and "SyntaxError" in response.json()["message"]


def test_missing_main_is_500_naming_it(runtime: str, publisher: Publisher, settings: Settings) -> None:
    processor_id = publisher.processor("function handler(r) { return 'x'; }", runtime=runtime)
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/processor/{processor_id}/run")
    assert response.status_code == 500 and "main()" in response.json()["message"]


def test_infinite_loop_is_504_and_does_not_delay_other_processors(
    runtime: str, publisher: Publisher, settings: Settings, target: TargetServer
) -> None:
    # Each looping run first tells the local server it is running, then loops until its time limit.
    signal = f"await fh.dispatch_request('{target.url}/looping');"
    looping = publisher.processor(
        f"async function main(fh, r) {{ {signal} while (true) {{}} }}", runtime=runtime
    )
    fast = publisher.processor("function main(r) { return 'fast'; }", runtime=runtime)
    answered: list[str] = []  # in the order the answers came
    with TestClient(create_app(replace(allow_loopback(settings), run_timeout_ms=1000))) as client:
        assert client.get(f"/processor/{fast}/run").text == "fast"  # the runtime is loaded and warm

        def loop_call() -> None:
            response = client.get(f"/processor/{looping}/run_with_prelude")
            answered.append(f"loop {response.status_code}")

        slow_calls = [threading.Thread(target=loop_call) for _ in range(2)]
        for call in slow_calls:
            call.start()
        wait_until(lambda: len(target.recorded.requests) == 2, "both looping runs to reach their loop")
        for _ in range(5):
            answered.append(client.get(f"/processor/{fast}/run").text)
        for call in slow_calls:
            call.join()
    # Both loops were running all along (their 1 s limit is ~100 times five fast runs): the fast
    # ones were answered before either loop was, not after it.
    assert answered == ["fast"] * 5 + ["loop 504"] * 2, answered


def test_heap_exhaustion_is_500_naming_the_limit(
    runtime: str, publisher: Publisher, settings: Settings
) -> None:
    js = "function main(r) { const keep = []; while (true) { keep.push(new Array(100000).fill(1)); } }"
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(
        create_app(replace(settings, run_timeout_ms=10_000, max_memory_bytes=32 << 20))
    ) as client:
        response = client.get(f"/processor/{processor_id}/run")
        assert client.get("/status").status_code == 200
    assert response.status_code == 500
    assert "FFAAS_MAX_MEMORY_BYTES" in response.json()["message"]


def test_unknown_processor_and_entry_point_are_404(
    runtime: str, publisher: Publisher, settings: Settings
) -> None:
    processor_id = publisher.processor("function main(r) { return 'x'; }", runtime=runtime)
    with TestClient(create_app(settings)) as client:
        unknown = client.get("/processor/00000000-0000-0000-0000-000000000001/run")
        wrong_entry = client.get(f"/processor/{processor_id}/go")
    assert unknown.status_code == wrong_entry.status_code == 404
    assert unknown.json()["message"] == "processor 00000000-0000-0000-0000-000000000001 not found"


def test_updated_processor_code_is_served_after_its_event(
    runtime: str, publisher: Publisher, settings: Settings
) -> None:
    processor_id = publisher.processor("function main(r) { return 'v1'; }", runtime=runtime)
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/processor/{processor_id}/run").text == "v1"
        publisher.processor("function main(r) { return 'v2'; }", processor_id=processor_id, runtime=runtime)
        deadline = time.monotonic() + 5
        while client.get(f"/processor/{processor_id}/run").text != "v2":
            assert time.monotonic() < deadline
            time.sleep(0.02)


def test_deep_recursion_is_a_clean_500_and_the_plane_keeps_serving(
    runtime: str, publisher: Publisher, settings: Settings
) -> None:
    recursing = publisher.processor(
        "function down(n) { return down(n + 1) + 1; } function main(r) { return down(0); }", runtime=runtime
    )
    fine = publisher.processor("function main(r) { return 'still here'; }", runtime=runtime)
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/processor/{recursing}/run")
        after = client.get(f"/processor/{fine}/run")
    assert response.status_code == 500
    assert response.json()["message"] == "the processor failed: RangeError: Maximum call stack size exceeded"
    assert (after.status_code, after.text) == (200, "still here")


def test_recursion_the_processor_catches_is_its_own_business(
    runtime: str, publisher: Publisher, settings: Settings
) -> None:
    js = """let depth = 0;
    function down(n) { depth = n; return down(n + 1) + 1; }
    function main(r) { try { return down(0); } catch (e) { return e.name + ' after ' + (depth > 100); } }"""
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/processor/{processor_id}/run")
    assert (response.status_code, response.text) == (200, "RangeError after true")


def test_logs_are_cut_at_the_limit_with_one_notice(
    runtime: str, publisher: Publisher, settings: Settings
) -> None:
    js = """function main(r) {
      for (let i = 0; i < 50; i++) console.log(String(i).padStart(100, '.'));
      return 'ok';
    }"""
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(settings)) as client:  # max_log_bytes=1000
        response = client.get(f"/processor/{processor_id}/run")
    assert response.text == "ok"
    logs = [item.payload for item in record_of(publisher, response.headers["fh-conversation-id"]).items[1:-1]]
    assert logs == [str(i).rjust(100, ".") for i in range(10)] + [
        "[ffaas] logs cut at 1000 bytes (FFAAS_MAX_LOG_BYTES)"
    ]


def test_math_random_differs_between_runs(runtime: str, publisher: Publisher, settings: Settings) -> None:
    processor_id = publisher.processor("function main(r) { return String(Math.random()); }", runtime=runtime)
    with TestClient(create_app(settings)) as client:
        answers = {client.get(f"/processor/{processor_id}/run").text for _ in range(3)}
    assert len(answers) == 3


def test_an_outbound_request_cut_off_by_the_time_limit_is_504_and_recorded(
    runtime: str, publisher: Publisher, settings: Settings
) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/slow"
    js = f"async function main(fh, r) {{ await fh.dispatch_request('{url}'); return 'too late'; }}"
    processor_id = publisher.processor(js, runtime=runtime)
    try:
        with TestClient(create_app(replace(settings, outbound_allow="127.0.0.1"))) as client:
            response = client.get(f"/processor/{processor_id}/run_with_prelude")
    finally:
        silent.close()
    assert response.status_code == 504
    assert response.json()["message"] == "run exceeded 500 ms (FFAAS_RUN_TIMEOUT_MS)"
    record = record_of(publisher, response.headers["fh-conversation-id"])
    assert [item.kind for item in record.items] == ["request", "request", "response", "response"]
    assert "FFAAS_RUN_TIMEOUT_MS" in record.items[2].payload["error"]


def test_wasm_engine_exhausting_its_native_stack_is_the_same_clean_500(
    publisher: Publisher, settings: Settings
) -> None:
    # JSON.parse recurses in C: the wasm stack runs out before quickjs's own check can see it.
    js = "function main(r) { return JSON.parse('['.repeat(200000)); }"
    processor_id = publisher.processor(js, runtime="wasm")
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/processor/{processor_id}/run")
    assert response.status_code == 500
    assert response.json()["message"] == "the processor failed: RangeError: Maximum call stack size exceeded"
    record = record_of(publisher, response.headers["fh-conversation-id"])
    assert "call stack exhausted" in (record.error_detail or "")


def test_missing_wasm_engine_is_a_500_saying_how_to_build_it(
    publisher: Publisher, settings: Settings, tmp_path: Path
) -> None:
    in_wasm = publisher.processor("function main(r) { return 'x'; }", runtime="wasm")
    on_v8 = publisher.processor("function main(r) { return 'v8 works'; }", runtime="v8")
    missing = tmp_path / "no-engine.wasm"
    with TestClient(create_app(replace(settings, js_engine_wasm=missing))) as client:
        response = client.get(f"/processor/{in_wasm}/run")
        unaffected = client.get(f"/processor/{on_v8}/run")
    assert response.status_code == 500
    message = response.json()["message"]
    assert str(missing) in message and "FFAAS_JS_ENGINE_WASM" in message and "make install" in message
    assert unaffected.text == "v8 works"


def test_each_run_sends_its_requests_and_logs_once(
    runtime: str, publisher: Publisher, settings: Settings, target: TargetServer
) -> None:
    # On runtime wasm the first run is attempted on the event loop, thrown away at the dispatch and
    # made again on the pool: nothing of the attempt may show.
    js = f"""async function main(fh, r) {{
      fh.log('before');
      const answer = await fh.dispatch_request('{target.url}/once', {{method: 'POST', body: r.body}});
      return 'sent ' + answer.code;
    }}"""
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(allow_loopback(settings))) as client:
        responses = [
            client.post(f"/processor/{processor_id}/run_with_prelude", content=str(n)) for n in range(3)
        ]
    assert [response.text for response in responses] == ["sent 200"] * 3
    assert [body for _, _, _, body in target.recorded.requests] == [b"0", b"1", b"2"]
    for response in responses:
        record = record_of(publisher, response.headers["fh-conversation-id"])
        assert [item.payload for item in record.items if item.kind == "log"] == ["before"]


def test_a_run_longer_than_the_inline_budget_still_completes_with_its_logs_once(
    runtime: str, publisher: Publisher, settings: Settings
) -> None:
    js = """function main(r) {
      console.log('start');
      const until = Date.now() + 30;
      while (Date.now() < until) {}
      return 'done';
    }"""
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(settings)) as client:
        responses = [client.get(f"/processor/{processor_id}/run") for _ in range(2)]
    assert [(response.status_code, response.text) for response in responses] == [(200, "done")] * 2
    for response in responses:
        record = record_of(publisher, response.headers["fh-conversation-id"])
        assert [item.payload for item in record.items if item.kind == "log"] == ["start"]


def test_a_logged_error_shows_its_line_then_its_frames(
    runtime: str, publisher: Publisher, settings: Settings
) -> None:
    js = "async function main(fh, r) { fh.log(new TypeError('boom')); return 'ok'; }"
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/processor/{processor_id}/run_with_prelude")
    [logged] = [
        item.payload for item in record_of(publisher, response.headers["fh-conversation-id"]).items[1:-1]
    ]
    first, *frames = logged.splitlines()
    assert first == "TypeError: boom"
    assert frames and "at main" in frames[0]


def test_status_says_whether_the_wasm_engine_is_ready(
    publisher: Publisher, settings: Settings, tmp_path: Path
) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/status").json()["wasm_js_engine"] == "not loaded"  # no wasm processor yet
        processor_id = publisher.processor("function main(r) { return 'x'; }", runtime="wasm")
        deadline = time.monotonic() + 5
        while client.get(f"/processor/{processor_id}/run").status_code == 404:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert client.get("/status").json()["wasm_js_engine"] == "ready"
    with TestClient(create_app(replace(settings, js_engine_wasm=tmp_path / "gone.wasm"))) as client:
        client.get(f"/processor/{processor_id}/run")
        state = client.get("/status").json()["wasm_js_engine"]
    assert state.startswith("unavailable: ") and "FFAAS_JS_ENGINE_WASM" in state
