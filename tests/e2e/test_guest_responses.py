"""A guest's response that HTTP cannot carry is refused where it is parsed, through real uvicorn.

Before, such a response got through to uvicorn, which failed at send time: the caller got a
plain-text 500 without `FH-Conversation-Id` while the conversation said `completed`.  Now the
caller gets the one JSON error naming the header, with `FH-Conversation-Id`, and the
conversation (outcome `invalid_response`) records exactly that response: status, headers and
body bytes.  Every case runs on WAGI (inline WAT modules writing a CGI response) or on both
processor runtimes (V8, and quickjs in the wasm sandbox).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RedisServer
from tests.data_plane import guests
from tests.e2e.cluster import Cluster, assert_error
from tests.e2e.conftest import running_cluster

ADDED_BY_THE_SERVER = {"date", "server", "fh-conversation-id"}

CGI_CASES = {
    "bare CR in a value": (b"X-Split: one\rtwo", "'x-split' has a control character ('\\r')"),
    "control character in a value": (b"X-Ctl: a\x01b", "'x-ctl' has a control character ('\\x01')"),
    "NUL in a value": (b"X-Nul: a\x00b", "'x-nul' has a control character ('\\x00')"),
    "DEL in a value": (b"X-Del: a\x7fb", "'x-del' has a control character ('\\x7f')"),
}
JS_CASES = {
    "space in a name": ("{'x bad': '1'}", "header name 'x bad' is not a valid HTTP header name"),
    "CRLF in a name": ("{'x-bad\\r\\ninjected': '1'}", "header name 'x-bad\\r\\ninjected' is not a valid"),
    "CRLF in a value": ("{'x-bad': '1\\r\\ninjected: 2'}", "'x-bad' has a control character ('\\r')"),
    "LF in a value": ("{'x-bad': ['fine', 'a\\nb']}", "'x-bad' has a control character ('\\n')"),
    "value outside latin-1": ("{'x-euro': '€'}", "'x-euro' has a character outside latin-1 ('€')"),
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("guest-responses"), redis_server) as cluster:
        yield cluster


@pytest.fixture(params=["v8", "wasm"])
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def assert_recorded_as_sent(cluster: Cluster, response: httpx.Response, *fragments: str) -> dict[str, Any]:
    """The caller got the JSON 500 naming `fragments` with FH-Conversation-Id, and the conversation
    is `invalid_response` with exactly that response as its final item."""
    message = assert_error(response, 500, *fragments)
    assert "fh-conversation-id" in response.headers, response.headers
    conversation = cluster.conversation(response)
    assert (conversation["outcome"], conversation["status"], conversation["error"]) == (
        "invalid_response",
        500,
        message,
    )
    final = conversation["audit_items"][-1]
    assert final["kind"] == "response" and final["request"] == conversation["audit_items"][0]["id"]
    sent_headers: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items():
        if name not in ADDED_BY_THE_SERVER:
            sent_headers.setdefault(name, []).append(value)
    assert final["payload"]["code"] == response.status_code
    assert final["payload"]["headers"] == sent_headers
    assert final["payload"]["body"].encode() == response.content
    return conversation


@pytest.mark.parametrize("case", list(CGI_CASES))
def test_a_module_writing_an_unsendable_header_gets_a_recorded_json_500(cluster: Cluster, case: str) -> None:
    header, fragment = CGI_CASES[case]
    stdout = b"Content-Type: text/plain\n" + header + b"\n\nthe body"
    endpoint_id = cluster.new_deployed_endpoint(case, guests.prints(stdout, b"a log line\n"))

    response = cluster.call(cluster.data_planes[0], endpoint_id)

    conversation = assert_recorded_as_sent(cluster, response, fragment)
    assert "refused response header" in conversation["error_detail"]
    assert [item["kind"] for item in conversation["audit_items"]] == ["request", "log", "response"]


def test_a_module_writing_utf8_bytes_in_a_value_sends_them_as_they_are(cluster: Cluster) -> None:
    """A CGI guest writes bytes: those past ASCII are obs-text, sendable; the conversation shows them
    decoded as latin-1, so they encode back to exactly the bytes sent."""
    value = "€ Zoë".encode()
    endpoint_id = cluster.new_deployed_endpoint("utf-8 value", guests.prints(b"X-Name: " + value + b"\n\nok"))

    response = cluster.call(cluster.data_planes[0], endpoint_id)

    assert (response.status_code, response.text) == (200, "ok")
    assert (b"x-name", value) in response.headers.raw
    final = cluster.conversation(response)["audit_items"][-1]["payload"]
    assert [recorded.encode("latin-1") for recorded in final["headers"]["x-name"]] == [value]


@pytest.mark.parametrize("case", list(JS_CASES))
def test_a_processor_returning_an_unsendable_header_gets_a_recorded_json_500(
    cluster: Cluster, runtime: str, case: str
) -> None:
    headers, fragment = JS_CASES[case]
    code = f"function main(request) {{ return {{code: 200, headers: {headers}, body: 'the body'}}; }}"
    processor = cluster.create_processor(code, runtime=runtime, name=case)

    response = cluster.run_processor(processor["id"], prelude=False)

    conversation = assert_recorded_as_sent(cluster, response, fragment)
    assert "refused response header" in conversation["error_detail"]


def test_respond_with_an_unsendable_header_is_refused_too(cluster: Cluster, runtime: str) -> None:
    code = "async function main(fh) { fh.respond_with({code: 201, headers: {'x-bad': 'a\\rb'}, body: 'x'}); }"
    processor = cluster.create_processor(code, runtime=runtime, name="respond_with")

    response = cluster.run_processor(processor["id"])

    assert_recorded_as_sent(cluster, response, "'x-bad' has a control character")


def test_a_data_url_body_that_is_not_base64_gets_a_recorded_json_500(cluster: Cluster, runtime: str) -> None:
    code = "async function main(fh) { fh.respond_with({body: 'data:application/octet-stream;base64,abc'}); }"
    processor = cluster.create_processor(code, runtime=runtime, name="bad base64")

    response = cluster.run_processor(processor["id"])

    assert_recorded_as_sent(cluster, response, "is not valid base64")


def test_sendable_unusual_headers_still_pass(cluster: Cluster, runtime: str) -> None:
    code = "function main(r) { return {headers: {'x-tab': 'a\\tb', 'x-latin': 'café'}, body: 'ok'}; }"
    processor = cluster.create_processor(code, runtime=runtime, name="fine")

    response = cluster.run_processor(processor["id"], prelude=False)

    assert (response.status_code, response.text) == (200, "ok")
    assert response.headers["x-tab"] == "a\tb"
    assert (b"x-latin", "café".encode("latin-1")) in response.headers.raw
    final = cluster.conversation(response)["audit_items"][-1]["payload"]
    assert (final["headers"]["x-latin"], final["body"]) == (["café"], "ok")
