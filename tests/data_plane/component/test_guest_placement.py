"""Where guest runs execute, so that one guest cannot serialise or starve the others: runs that
keep the event loop busy move to the worker pool, and wasm processors waiting on their upstreams
hold no worker thread, with their requests in flight together.  Placement is observed in `/status`
and with upstreams that answer only once several requests are held at once, never by time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from data_plane.app import create_app
from data_plane.settings import Settings
from tests.data_plane import guests
from tests.data_plane.component.conftest import Publisher
from tests.data_plane.component.test_processors import record_of
from tests.data_plane.component.upstreams import HoldingServer, wait_for

# About 4 ms of work here: under the default 5 ms inline budget, well above the 1 ms average at
# which a module moves to the pool.  The budget is raised in these tests so that no run is ever
# interrupted (which would move the module by the per-run rule instead).
WAGI_WORK = 16_000_000
JS_WORK = 100_000
NEVER_INTERRUPTED_MS = 2000


@pytest.fixture(params=["v8", "wasm"])
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def generous(settings: Settings) -> Settings:
    return replace(settings, run_timeout_ms=10_000, inline_budget_ms=NEVER_INTERRUPTED_MS)


def test_an_endpoint_that_always_finishes_under_the_budget_moves_to_the_pool(
    publisher: Publisher, generous: Settings
) -> None:
    busy = publisher.deploy(guests.counts_to(WAGI_WORK, b"counted"))
    hello = publisher.deploy(guests.prints(b"hello"))
    with TestClient(create_app(generous)) as client:
        answers = [client.get(f"/{busy}").text for _ in range(8)]
        status = client.get("/status").json()
        assert (status["pool_only_guests"], status["runs_on_pool"]) == (1, 8 - 5), status
        assert [client.get(f"/{hello}").text for _ in range(8)] == ["hello"] * 8
        after = client.get("/status").json()
    assert answers == ["counted"] * 8
    assert (after["pool_only_guests"], after["runs_on_pool"]) == (1, 3), (
        f"a fast module stays inline: {after}"
    )


def test_a_wasm_processor_that_always_finishes_under_the_budget_moves_to_the_pool(
    publisher: Publisher, generous: Settings
) -> None:
    js = f"function main(r) {{ let x = 0; for (let i = 0; i < {JS_WORK}; i++) x += i; return String(x); }}"
    processor_id = publisher.processor(js, runtime="wasm")
    with TestClient(create_app(generous)) as client:
        answers = [client.get(f"/processor/{processor_id}/run").text for _ in range(8)]
        status = client.get("/status").json()
    assert answers == [str(sum(range(JS_WORK)))] * 8
    assert (status["pool_only_guests"], status["runs_on_pool"]) == (1, 8 - 5), status


def test_requests_started_together_are_in_flight_together(
    runtime: str, publisher: Publisher, settings: Settings
) -> None:
    barrier = HoldingServer(release_at=3)  # answers only once it holds all three at once
    js = f"""async function main(fh, r) {{
      const send = (path) => fh.dispatch_request('{barrier.url}' + path);
      const answers = await Promise.all(['/a', '/b', '/c'].map(send));
      return answers.map((a) => a.code + ' ' + a.body).join(', ');
    }}"""
    processor_id = publisher.processor(js, runtime=runtime)
    try:
        relaxed = replace(settings, outbound_allow="127.0.0.1", run_timeout_ms=10_000)
        with TestClient(create_app(relaxed)) as client:
            response = client.post(f"/processor/{processor_id}/run_with_prelude")
    finally:
        barrier.close()
    assert (response.status_code, response.text) == (200, "200 /a, 200 /b, 200 /c")
    assert barrier.most_held == 3


@pytest.fixture
def upstream() -> Iterator[HoldingServer]:
    server = HoldingServer()
    yield server
    server.close()


def test_endpoints_are_served_while_wasm_processors_wait_on_slow_upstreams(
    publisher: Publisher, settings: Settings, upstream: HoldingServer
) -> None:
    waiting_runs = 6
    js = f"""async function main(fh, r) {{
      fh.log('asking');
      const answer = await fh.dispatch_request('{upstream.url}/slow/' + r.body);
      return 'upstream said ' + answer.body;
    }}"""
    processor_id = publisher.processor(js, runtime="wasm")
    endpoint_id = publisher.deploy(guests.prints(b"served"))
    # Two worker threads, and no run on the event-loop thread: the endpoint needs a worker.
    few_threads = replace(
        settings, outbound_allow="127.0.0.1", run_timeout_ms=20_000, run_concurrency=2, inline_budget_ms=0
    )
    with TestClient(create_app(few_threads)) as client:
        results: dict[int, str] = {}

        def run(n: int) -> None:
            results[n] = client.post(f"/processor/{processor_id}/run_with_prelude", content=str(n)).text

        processors = [threading.Thread(target=run, args=(n,)) for n in range(waiting_runs)]
        for thread in processors:
            thread.start()
        # More processors wait on the upstream than there are worker threads...
        upstream.wait_until(lambda server: server.held == waiting_runs)
        assert client.get("/status").json()["wasm_processor_runs"] == waiting_runs
        # ...and an endpoint run still gets a thread while every one of them waits.
        endpoint = client.get(f"/{endpoint_id}")
        assert (endpoint.status_code, endpoint.text) == (200, "served")
        assert upstream.held == waiting_runs and not results
        upstream.release()
        for thread in processors:
            thread.join()
    assert results == {n: f"upstream said /slow/{n}" for n in range(waiting_runs)}


def test_wasm_processor_runs_beyond_their_slots_and_queue_are_answered_503(
    publisher: Publisher, settings: Settings, upstream: HoldingServer
) -> None:
    js = f"async function main(fh, r) {{ await fh.dispatch_request('{upstream.url}/held'); return 'done'; }}"
    processor_id = publisher.processor(js, runtime="wasm")
    one_slot = replace(settings, outbound_allow="127.0.0.1", run_timeout_ms=10_000, wasm_processor_runs=1)
    url = f"/processor/{processor_id}/run_with_prelude"
    with TestClient(create_app(one_slot)) as client:
        answers: list[int] = []
        holder = threading.Thread(target=lambda: answers.append(client.post(url).status_code))
        holder.start()
        upstream.wait_until(lambda server: server.held == 1)  # the one run slot is taken
        queued = threading.Thread(target=lambda: answers.append(client.post(url).status_code))
        queued.start()
        wait_for(lambda: client.get("/status").json()["wasm_processor_queue"] == 1, what="a queued run")
        refused = client.post(url)  # the queue (as long as the slots) is full too
        upstream.release()
        holder.join()
        queued.join()
    assert answers == [200, 200]
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "FFAAS_WASM_PROCESSOR_RUNS" in refused.json()["message"]
    assert record_of(publisher, refused.headers["fh-conversation-id"]).outcome == "overloaded"
