"""The loop guard end to end: a processor that calls itself through its own, real data plane ends
with a recorded chain of 508s instead of running until something gives way, and the plane keeps
serving.  Every process is real (redis-server, both planes); the processor calls the data plane's
own URL, which FFAAS_OUTBOUND_ALLOW=127.0.0.1 lets it reach."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import RedisServer
from tests.e2e.cluster import Cluster
from tests.e2e.conftest import running_cluster

MAX_HOPS = 3

CALLS_ITSELF = """async function main(fh, request) {
  const self = 'http://' + request.headers.host[0] + request.path;
  const answer = await fh.dispatch_request(self, {method: 'POST', body: 'again'});
  return {code: answer.code, headers: {'content-type': 'text/plain'}, body: answer.body};
}"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    settings = {
        "FFAAS_OUTBOUND_ALLOW": "127.0.0.1",
        "FFAAS_MAX_HOPS": str(MAX_HOPS),
        "FFAAS_RUN_TIMEOUT_MS": "10000",
    }
    with running_cluster(tmp_path_factory.mktemp("loops"), redis_server, settings=settings) as cluster:
        yield cluster


@pytest.fixture(params=["v8", "wasm"])
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def outbound_of(conversation: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one outbound request of a run of CALLS_ITSELF, and the item that answers it."""
    items = conversation["audit_items"]
    [request] = [item for item in items if item["kind"] == "request" and item["inc"] == 1]
    [answer] = [item for item in items if item["kind"] == "response" and item["request"] == request["id"]]
    return request, answer


def test_a_processor_calling_itself_ends_in_a_recorded_chain_of_508s(cluster: Cluster, runtime: str) -> None:
    processor_id = cluster.create_processor(CALLS_ITSELF, name="calls itself", runtime=runtime)["id"]
    response = cluster.run_processor(processor_id, method="POST", content=b"start")
    assert response.status_code == 508, response.text
    assert "FFAAS_MAX_HOPS" in response.json()["message"]

    # Follow the chain down from the caller's run: hop 0 calls hop 1, ... up to hop MAX_HOPS.
    conversation = cluster.conversation(response)
    for hop in range(MAX_HOPS):
        request, answer = outbound_of(conversation)
        assert conversation["audit_items"][0]["payload"]["headers"].get("fh-hops", ["0"]) == [str(hop)]
        assert request["payload"]["headers"]["fh-hops"] == [str(hop + 1)]
        assert answer["payload"]["code"] == 508  # what the next hop answered, passed on by this one
        assert conversation["audit_items"][-1]["payload"]["code"] == 508
        conversation = cluster.conversation_by_id(answer["payload"]["headers"]["fh-conversation-id"][0])
    # The last run was refused its next hop before sending it, and is recorded as the loop.
    request, refusal = outbound_of(conversation)
    assert request["payload"]["headers"]["fh-hops"] == [str(MAX_HOPS + 1)]
    assert "FFAAS_MAX_HOPS" in refusal["payload"]["error"]
    last = conversation["audit_items"][-1]["payload"]
    assert last["code"] == 508 and "loop detected" in last["body"]

    # A request arriving past the limit (another plane, a forged header) is refused at the door.
    past = cluster.run_processor(processor_id, method="POST", headers={"FH-Hops": str(MAX_HOPS + 1)})
    assert past.status_code == 508 and "FFAAS_MAX_HOPS" in past.json()["message"]
    assert cluster.conversation(past)["audit_items"][-1]["payload"]["code"] == 508

    # The plane keeps serving.
    fine = cluster.create_processor("function main(r) { return 'still serving'; }", runtime=runtime)["id"]
    assert cluster.run_processor(fine, prelude=False).text == "still serving"
    status = cluster.http.get(f"{cluster.data_planes[0].url}/status").json()
    assert status["status"] == "ok" and status["outbound_in_flight"] == 0
