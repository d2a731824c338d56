"""Limits between guests on outbound requests, on both runtimes: how many a run may make, how many
may be in flight (per run, per plane), and the hop count that stops a processor calling itself."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from data_plane.app import create_app
from data_plane.settings import Settings
from tests.data_plane import guests
from tests.data_plane.component.conftest import Publisher, TargetServer
from tests.data_plane.component.test_processors import record_of
from tests.data_plane.component.upstreams import HoldingServer, wait_for


@pytest.fixture(params=["v8", "wasm"])
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def holding() -> Iterator[HoldingServer]:
    server = HoldingServer()
    yield server
    server.close()


def loopback(settings: Settings, **changes: int) -> Settings:
    return replace(settings, outbound_allow="127.0.0.1", run_timeout_ms=10_000, **changes)


def in_background(call: object) -> tuple[threading.Thread, list[object]]:
    """Run `call()` on a thread; its result lands in the list."""
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(call()))  # type: ignore[operator]
    thread.start()
    return thread, results


def test_a_run_gets_a_catchable_error_past_max_outbound_requests_recorded_once(
    runtime: str, publisher: Publisher, settings: Settings, target: TargetServer
) -> None:
    js = f"""async function main(fh, r) {{
      const seen = [];
      for (let i = 1; i <= 5; i++) {{
        try {{ seen.push((await fh.dispatch_request('{target.url}/n' + i)).code); }}
        catch (error) {{ seen.push(error.message); }}
      }}
      return {{code: 200, body: JSON.stringify(seen)}};
    }}"""
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(loopback(settings, max_outbound_requests=3))) as client:
        response = client.post(f"/processor/{processor_id}/run_with_prelude")
    seen = json.loads(response.text)
    assert seen[:3] == [200, 200, 200]
    for refused in seen[3:]:
        assert refused.startswith(f"request to {target.url}/n")
        assert "at most 3 outbound requests (FFAAS_MAX_OUTBOUND_REQUESTS)" in refused
    assert [path for _, path, _, _ in target.recorded.requests] == ["/n1", "/n2", "/n3"]
    record = record_of(publisher, response.headers["fh-conversation-id"])
    outbound = [item for item in record.items if item.kind == "request" and item.inc]
    assert [(item.inc, item.payload["path"]) for item in outbound] == [
        (1, "/n1"),
        (2, "/n2"),
        (3, "/n3"),
        (4, "/n4"),
    ]
    [refusal] = [item for item in record.items if item.kind == "response" and item.request == outbound[3].id]
    assert "FFAAS_MAX_OUTBOUND_REQUESTS" in refusal.payload["error"]


def test_a_runs_requests_in_flight_are_bounded_the_others_wait_their_turn(
    runtime: str, publisher: Publisher, settings: Settings, holding: HoldingServer
) -> None:
    js = f"""async function main(fh, r) {{
      const paths = ['/1', '/2', '/3', '/4', '/5', '/6'];
      const answers = await Promise.all(paths.map((p) => fh.dispatch_request('{holding.url}' + p)));
      return answers.map((a) => a.code).join(' ');
    }}"""
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(loopback(settings, max_outbound_in_flight_per_run=2))) as client:
        run, results = in_background(lambda: client.post(f"/processor/{processor_id}/run_with_prelude"))
        # All six are made at once; two are sent, four wait for one of the run's two slots.
        wait_for(
            lambda: (client.get("/status").json()["outbound_waiting"], holding.held) == (4, 2),
            what="two requests held upstream and four waiting for a slot",
        )
        assert client.get("/status").json()["outbound_in_flight"] == 2
        assert len(holding.received) == 2
        holding.release()
        run.join()
    assert results[0].text == " ".join(["200"] * 6)  # type: ignore[attr-defined]
    assert holding.most_held == 2 and len(holding.received) == 6


def test_the_planes_requests_in_flight_are_bounded_across_runs(
    runtime: str, publisher: Publisher, settings: Settings, holding: HoldingServer
) -> None:
    js = f"""async function main(fh, r) {{
      const answers = await Promise.all([1, 2, 3].map((n) => fh.dispatch_request('{holding.url}/' + n)));
      return answers.map((a) => a.code).join(' ');
    }}"""
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(loopback(settings, max_outbound_in_flight=2))) as client:
        runs = [
            in_background(lambda: client.post(f"/processor/{processor_id}/run_with_prelude"))
            for _ in range(2)
        ]
        wait_for(
            lambda: (client.get("/status").json()["outbound_waiting"], holding.held) == (4, 2),
            what="two requests held upstream and four waiting for a slot of the plane",
        )
        assert len(holding.received) == 2
        holding.release()
        for thread, _ in runs:
            thread.join()
    assert [results[0].text for _, results in runs] == ["200 200 200"] * 2  # type: ignore[attr-defined]
    assert holding.most_held == 2


def test_waiting_for_an_in_flight_slot_ends_with_the_run_and_is_recorded(
    runtime: str, publisher: Publisher, settings: Settings, holding: HoldingServer
) -> None:
    js = f"""async function main(fh, r) {{
      const send = (path) => fh.dispatch_request('{holding.url}' + path);
      await Promise.all([send('/first'), send('/second')]);
    }}"""
    processor_id = publisher.processor(js, runtime=runtime)
    slow = replace(loopback(settings, max_outbound_in_flight_per_run=1), run_timeout_ms=1000)
    with TestClient(create_app(slow)) as client:
        response = client.post(f"/processor/{processor_id}/run_with_prelude")
    assert response.status_code == 504
    assert holding.received == ["/first"]  # the second never got a slot, so it was never sent
    record = record_of(publisher, response.headers["fh-conversation-id"])
    second = next(item for item in record.items if item.kind == "request" and item.inc == 2)
    [cut_off] = [item for item in record.items if item.kind == "response" and item.request == second.id]
    assert "FFAAS_RUN_TIMEOUT_MS" in cut_off.payload["error"]


def test_outbound_requests_carry_the_next_hop_count_whatever_the_processor_sets(
    runtime: str, publisher: Publisher, settings: Settings, target: TargetServer
) -> None:
    js = f"""async function main(fh, r) {{
      await fh.dispatch_request('{target.url}/next', {{headers: {{'fh-hops': '0', 'X-Other': 'kept'}}}});
    }}"""
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(loopback(settings))) as client:
        first = client.post(f"/processor/{processor_id}/run_with_prelude")
        second = client.post(f"/processor/{processor_id}/run_with_prelude", headers={"FH-Hops": "3"})
    assert first.status_code == second.status_code == 200
    assert [(headers["fh-hops"], headers["x-other"]) for _, _, headers, _ in target.recorded.requests] == [
        ("1", "kept"),
        ("4", "kept"),
    ]
    record = record_of(publisher, second.headers["fh-conversation-id"])
    outbound = next(item for item in record.items if item.kind == "request" and item.inc == 1)
    assert outbound.payload["headers"]["fh-hops"] == ["4"]


def test_a_run_arriving_past_the_hop_limit_is_refused_with_508_and_recorded(
    runtime: str, publisher: Publisher, settings: Settings
) -> None:
    processor_id = publisher.processor("function main(r) { return 'ran'; }", runtime=runtime)
    with TestClient(create_app(replace(settings, max_hops=4))) as client:
        at_limit = client.get(f"/processor/{processor_id}/run", headers={"FH-Hops": "4"})
        past = client.get(f"/processor/{processor_id}/run", headers={"FH-Hops": "5"})
    assert (at_limit.status_code, at_limit.text) == (200, "ran")
    assert past.status_code == 508
    assert "loop detected" in past.json()["message"] and "FFAAS_MAX_HOPS" in past.json()["message"]
    record = record_of(publisher, past.headers["fh-conversation-id"])
    assert (record.outcome, record.status) == ("loop_detected", 508)
    assert record.items[-1].payload["code"] == 508


def test_an_endpoint_run_past_the_hop_limit_is_refused_too(publisher: Publisher, settings: Settings) -> None:
    endpoint_id = publisher.deploy(guests.prints(b"ran"))
    with TestClient(create_app(replace(settings, max_hops=2))) as client:
        response = client.get(f"/{endpoint_id}", headers={"FH-Hops": "3"})
    assert response.status_code == 508 and "FFAAS_MAX_HOPS" in response.json()["message"]
    assert record_of(publisher, response.headers["fh-conversation-id"]).outcome == "loop_detected"


def test_dispatch_refuses_past_the_hop_limit_catchable_and_recorded(
    runtime: str, publisher: Publisher, settings: Settings, target: TargetServer
) -> None:
    js = f"""async function main(fh, r) {{
      try {{ await fh.dispatch_request('{target.url}/again'); return 'sent'; }}
      catch (error) {{ return 'refused: ' + error.message; }}
    }}"""
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(replace(loopback(settings), max_hops=4))) as client:
        response = client.post(f"/processor/{processor_id}/run_with_prelude", headers={"FH-Hops": "4"})
    assert response.status_code == 200
    assert response.text.startswith("refused: request to ") and "FFAAS_MAX_HOPS" in response.text
    assert target.recorded.requests == []
    record = record_of(publisher, response.headers["fh-conversation-id"])
    outbound = next(item for item in record.items if item.kind == "request" and item.inc == 1)
    [refusal] = [item for item in record.items if item.kind == "response" and item.request == outbound.id]
    assert "FFAAS_MAX_HOPS" in refusal.payload["error"]
    assert record.outcome == "completed"  # the processor handled it


def test_a_run_failing_because_the_hop_limit_refused_it_is_a_508_loop(
    runtime: str, publisher: Publisher, settings: Settings, target: TargetServer
) -> None:
    js = f"async function main(fh, r) {{ return await fh.dispatch_request('{target.url}/again'); }}"
    processor_id = publisher.processor(js, runtime=runtime)
    with TestClient(create_app(replace(loopback(settings), max_hops=4))) as client:
        response = client.post(f"/processor/{processor_id}/run_with_prelude", headers={"FH-Hops": "4"})
    assert response.status_code == 508
    assert "loop detected" in response.json()["message"] and "FFAAS_MAX_HOPS" in response.json()["message"]
    assert record_of(publisher, response.headers["fh-conversation-id"]).outcome == "loop_detected"
