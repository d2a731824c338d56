"""Processors end to end: saved by the control plane, run by real data planes, read back as conversations.

The fh-http contract of SPEC.md ("JavaScript / TypeScript processors", "Conversations",
"Audit items") over plain HTTP, with every process real: redis-server, the control plane
(esbuild at save time), two data planes and a local HTTP server that outbound requests
reach. The module's cluster has

- `allowing`: a data plane with FFAAS_OUTBOUND_ALLOW=127.0.0.1, so processors may call the
  local target server (link-local and private addresses stay denied);
- `strict`: a data plane with the default deny (FFAAS_OUTBOUND_ALLOW empty);

and FFAAS_RUN_TIMEOUT_MS=1000 for both, so a looping processor is stopped quickly.  Every run
test runs once per runtime (`runtime`: V8, and quickjs in the wasm sandbox).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RedisServer
from tests.e2e.cluster import TIMESTAMP, UUID, Cluster, TargetServer, assert_error
from tests.e2e.conftest import running_cluster
from tests.e2e.processes import Plane

RUN_TIMEOUT_MS = 1000
PROCESSOR_KEYS = {"id", "name", "language", "runtime", "code", "active_version_id", "version_history"}
CONVERSATION_KEYS = {"id", "created_at", "request_processor_id", "audit_items"}
ITEM_KEYS = {"kind", "id", "created_at", "conversation_id", "payload"}
REQUEST_PAYLOAD_KEYS = {"method", "path", "query", "headers", "body", "version"}
RESPONSE_PAYLOAD_KEYS = {"code", "headers", "body", "version"}

ECHO_RUN = """function main(request) {
  return {code: 200, headers: {'content-type': 'application/json'}, body: JSON.stringify(request)};
}"""
ECHO_PRELUDE = """async function main(fh, request) {
  fh.respond_with({code: 200, headers: {'content-type': 'application/json'},
                   body: JSON.stringify(fh.get_request())});
}"""


@pytest.fixture
def target() -> Iterator[TargetServer]:
    with TargetServer() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    settings = {"FFAAS_OUTBOUND_ALLOW": "127.0.0.1", "FFAAS_RUN_TIMEOUT_MS": str(RUN_TIMEOUT_MS)}
    with running_cluster(tmp_path_factory.mktemp("processors"), redis_server, settings=settings) as cluster:
        cluster.start_data_plane(settings={"FFAAS_OUTBOUND_ALLOW": ""})
        yield cluster


@pytest.fixture
def allowing(cluster: Cluster) -> Plane:
    return cluster.data_planes[0]


@pytest.fixture
def strict(cluster: Cluster) -> Plane:
    return cluster.data_planes[1]


@pytest.fixture(params=["v8", "wasm"])
def runtime(request: pytest.FixtureRequest) -> str:
    """The runs below happen once on each runtime: V8, and quickjs in the wasm sandbox."""
    return str(request.param)


@pytest.fixture
def echo_ids(cluster: Cluster, runtime: str) -> dict[bool, str]:
    """The echo processor for `/run` (False) and for `/run_with_prelude` (True)."""
    return {
        False: cluster.create_processor(ECHO_RUN, name="echo", runtime=runtime)["id"],
        True: cluster.create_processor(ECHO_PRELUDE, name="echo with prelude", runtime=runtime)["id"],
    }


def processors_url(cluster: Cluster, processor_id: str = "") -> str:
    return f"{cluster.admin_url}/admin/processor" + (f"/{processor_id}" if processor_id else "")


def list_processors(cluster: Cluster) -> list[dict[str, Any]]:
    response = cluster.admin.get(processors_url(cluster))
    assert response.status_code == 200, response.text
    processors: list[dict[str, Any]] = response.json()
    return processors


def items_of(cluster: Cluster, response: httpx.Response, processor_id: str) -> list[dict[str, Any]]:
    """The run's audit items, after checking the conversation's own shape and every item's."""
    conversation = cluster.conversation(response)
    assert set(conversation) >= CONVERSATION_KEYS, conversation
    assert conversation["id"] == response.headers["fh-conversation-id"]
    assert UUID.fullmatch(conversation["id"]) and TIMESTAMP.fullmatch(conversation["created_at"])
    assert conversation["request_processor_id"] == processor_id
    items: list[dict[str, Any]] = conversation["audit_items"]
    for item in items:
        extra = {"request": {"inc"}, "response": {"request"}, "log": set()}[item["kind"]]
        assert set(item) == ITEM_KEYS | extra, item
        assert item["conversation_id"] == conversation["id"] and UUID.fullmatch(item["id"])
        assert TIMESTAMP.fullmatch(item["created_at"]), item
    assert [item["created_at"] for item in items] == sorted(item["created_at"] for item in items)
    first, last = items[0], items[-1]
    assert (first["kind"], first["inc"]) == ("request", 0), first
    assert set(first["payload"]) == REQUEST_PAYLOAD_KEYS, first
    assert (last["kind"], last["request"]) == ("response", first["id"]), last
    assert set(last["payload"]) == RESPONSE_PAYLOAD_KEYS, last
    assert last["payload"]["code"] == response.status_code
    if response.status_code < 400:
        assert last["payload"]["body"] == response.text
    else:  # byte-exactness of recorded error bodies has its own test
        assert json.loads(last["payload"]["body"]) == response.json()
    return items


# -- the admin API ---------------------------------------------------------------------------------


def test_processor_create_get_list_replace_delete(cluster: Cluster, allowing: Plane) -> None:
    code = "function main(request) { return 'one'; }"
    created = cluster.admin.post(
        processors_url(cluster),
        json={"name": "crud", "language": "javascript", "runtime": "v8", "code": code},
    )

    assert created.status_code == 201, created.text
    processor = created.json()
    assert set(processor) == PROCESSOR_KEYS, processor
    assert UUID.fullmatch(processor["id"]), processor
    assert processor == {**processor, "name": "crud", "language": "js", "runtime": "v8", "code": code}
    assert cluster.admin.get(processors_url(cluster, processor["id"])).json() == processor
    assert processor in list_processors(cluster)

    ts_code = (
        "async function main(fh: unknown, request: {method: string}): Promise<string> {\n  return 'two';\n}\n"
    )
    fields = {"name": "crud v2", "language": "typescript", "runtime": "v8", "code": ts_code}
    replaced = cluster.admin.put(processors_url(cluster, processor["id"]), json=fields)

    assert replaced.status_code == 200, replaced.text
    versions = replaced.json()["version_history"]
    assert replaced.json() == {
        "id": processor["id"],
        **fields,
        "language": "ts",
        "active_version_id": versions[-1]["id"],
        "version_history": [*processor["version_history"], versions[-1]],
    }
    assert cluster.admin.get(processors_url(cluster, processor["id"])).json() == replaced.json()
    assert cluster.run_processor(processor["id"], plane=allowing).text == "two"

    deleted = cluster.admin.delete(processors_url(cluster, processor["id"]))

    assert (deleted.status_code, deleted.content) == (204, b"")
    missing = f"processor {processor['id']} not found"
    assert_error(cluster.admin.get(processors_url(cluster, processor["id"])), 404, missing)
    assert_error(cluster.admin.delete(processors_url(cluster, processor["id"])), 404, missing)
    assert_error(cluster.admin.put(processors_url(cluster, processor["id"]), json=fields), 404, missing)
    assert processor["id"] not in [listed["id"] for listed in list_processors(cluster)]
    assert_error(cluster.run_processor(processor["id"], plane=allowing), 404, missing)


def test_put_needs_every_field_and_changes_nothing_without_them(cluster: Cluster, allowing: Plane) -> None:
    processor = cluster.create_processor("function main(r) { return 'kept'; }", name="whole")

    for field in ("name", "language", "runtime", "code"):
        partial = {key: processor[key] for key in ("name", "language", "runtime", "code") if key != field}
        response = cluster.admin.put(processors_url(cluster, processor["id"]), json=partial)
        assert_error(response, 400, f"{field} is required", "PUT replaces the whole processor")
    other_id = {**processor, "id": str(uuid.uuid4()), "code": "function main(r) { return 'moved'; }"}
    assert_error(cluster.admin.put(processors_url(cluster, processor["id"]), json=other_id), 400, "differs")

    assert cluster.admin.get(processors_url(cluster, processor["id"])).json() == processor
    assert cluster.run_processor(processor["id"], plane=allowing, prelude=False).text == "kept"


def test_unknown_processor_is_404_on_both_planes(cluster: Cluster, allowing: Plane) -> None:
    unknown = str(uuid.uuid4())

    assert_error(cluster.admin.get(processors_url(cluster, unknown)), 404, unknown)
    for prelude in (False, True):
        assert_error(cluster.run_processor(unknown, plane=allowing, prelude=prelude), 404, unknown)


def test_admin_routes_need_the_token(cluster: Cluster) -> None:
    fields = {"name": "x", "language": "js", "runtime": "v8", "code": "function main(r) { return 1; }"}
    before = list_processors(cluster)

    assert_error(cluster.http.post(processors_url(cluster), json=fields), 401)
    assert_error(cluster.http.get(processors_url(cluster)), 401)
    assert list_processors(cluster) == before


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"language": "python"}, ["language must be one of js, ts", '"python"']),
        ({"runtime": "node"}, ["runtime must be one of v8, wasm", '"node"']),
        ({"name": None}, ["name is required"]),
        ({"code": None}, ["code is required"]),
        ({"code": 42}, ["code must be a string"]),
    ],
)
def test_invalid_fields_are_refused_and_nothing_is_stored(
    cluster: Cluster, change: dict[str, Any], fragments: list[str]
) -> None:
    fields = {"name": "bad", "language": "js", "runtime": "v8", "code": "function main(r) { return 1; }"}
    fields = {key: value for key, value in {**fields, **change}.items() if value is not None}
    before = list_processors(cluster)

    assert_error(cluster.admin.post(processors_url(cluster), json=fields), 400, *fragments)
    assert list_processors(cluster) == before


@pytest.mark.parametrize(
    ("language", "code", "location", "message"),
    [
        ("js", "function main(request) {\n  const x = 1;\n  return x +;\n}\n", "3:13", 'Unexpected ";"'),
        ("javascript", "function main(r) {\n  return {a: 1;\n}\n", "2:15", None),
        (
            "ts",
            "interface Hook { id: number }\n"
            "async function main(fh: any, request: any): Promise<string> {\n"
            "  const hook: Hook = { id: 1 };\n"
            "  return hook.id as string string;\n"
            "}\n",
            "4:28",
            'Expected ";" but found "string"',
        ),
        ("typescript", "function main(r: string {\n  return r;\n}\n", "1:25", 'Expected ")" but found "{"'),
    ],
    ids=["js", "javascript", "ts", "typescript"],
)
def test_syntax_errors_are_refused_at_save_with_line_and_column(
    cluster: Cluster, allowing: Plane, language: str, code: str, location: str, message: str | None
) -> None:
    before = list_processors(cluster)

    created = cluster.admin.post(
        processors_url(cluster), json={"name": "broken", "language": language, "runtime": "v8", "code": code}
    )

    text = assert_error(
        created, 400, "code does not compile", f": {location}: ", *([message] if message else [])
    )
    assert list_processors(cluster) == before, text

    # The same code as a replacement is refused too, and the stored processor keeps running.
    processor = cluster.create_processor("function main(r) { return 'still good'; }", name="good")
    replaced = cluster.admin.put(
        processors_url(cluster, processor["id"]),
        json={"name": "broken", "language": language, "runtime": "v8", "code": code},
    )
    assert_error(replaced, 400, "code does not compile", f": {location}: ")
    assert cluster.admin.get(processors_url(cluster, processor["id"])).json() == processor
    assert cluster.run_processor(processor["id"], plane=allowing).text == "still good"


# -- the request object, echoed and recorded -------------------------------------------------------

ECHO_CASES = [
    ("GET", b"", None),
    ("POST", b'{"order": 7, "items": ["a", "b"], "note": "Zo\xc3\xab \xe2\x98\x83"}', "application/json"),
    ("PUT", b"name=Ada+Lovelace&lang=js&empty=", "application/x-www-form-urlencoded"),
    ("PATCH", b'{"op": "replace", "path": "/x"}', "application/json"),
    ("DELETE", b"", None),
]


@pytest.mark.parametrize("prelude", [False, True], ids=["run", "run_with_prelude"])
@pytest.mark.parametrize(("method", "body", "content_type"), ECHO_CASES, ids=[case[0] for case in ECHO_CASES])
def test_request_object_is_echoed_and_recorded_as_the_conversation(
    runtime: str,
    cluster: Cluster,
    allowing: Plane,
    echo_ids: dict[bool, str],
    prelude: bool,
    method: str,
    body: bytes,
    content_type: str | None,
) -> None:
    processor_id = echo_ids[prelude]
    headers = [
        ("User-Agent", "ffaas-e2e/1.0"),
        ("X-Custom", "custom value"),
        ("X-Multi", "a"),
        ("X-Multi", "b"),
    ]
    if content_type:
        headers.append(("Content-Type", content_type))

    response = cluster.run_processor(
        processor_id,
        plane=allowing,
        prelude=prelude,
        method=method,
        query="a=1&b=two%20words",
        content=body,
        headers=headers,
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert UUID.fullmatch(response.headers["fh-conversation-id"])
    echoed = response.json()
    entry = "run_with_prelude" if prelude else "run"
    assert set(echoed) == REQUEST_PAYLOAD_KEYS, echoed
    assert echoed["method"] == method
    assert echoed["path"] == f"/processor/{processor_id}/{entry}"
    assert echoed["query"] == "a=1&b=two%20words"
    assert echoed["body"] == body.decode()
    assert echoed["version"] == "HTTP/1.1"
    assert echoed["headers"]["user-agent"] == ["ffaas-e2e/1.0"]
    assert echoed["headers"]["x-custom"] == ["custom value"]
    assert echoed["headers"]["x-multi"] == ["a", "b"]
    assert all(name == name.lower() for name in echoed["headers"]), echoed["headers"]
    if content_type:
        assert echoed["headers"]["content-type"] == [content_type]

    items = items_of(cluster, response, processor_id)
    assert [item["kind"] for item in items] == ["request", "response"]
    assert items[0]["payload"] == echoed  # the processor saw exactly what was recorded
    assert items[1]["payload"] == {
        "code": 200,
        "headers": {"content-type": ["application/json"]},
        "body": response.text,
        "version": "HTTP/1.1",
    }
    audit_items = cluster.http.get(
        f"{cluster.admin_url}/conversation/{items[0]['conversation_id']}/audit_item"
    )
    assert audit_items.status_code == 200 and audit_items.json() == items


def test_unknown_conversation_is_404(cluster: Cluster) -> None:
    unknown = str(uuid.uuid4())

    assert_error(cluster.http.get(f"{cluster.admin_url}/conversation/{unknown}"), 404)


# -- logs -----------------------------------------------------------------------------------------


def test_logs_are_recorded_in_order_between_request_and_response(
    runtime: str, cluster: Cluster, allowing: Plane
) -> None:
    code = """async function main(fh, request) {
      fh.log('first line');
      fh.log({second: 2, ok: true});
      console.log('from console', 3);
      return 'logged';
    }"""
    processor = cluster.create_processor(runtime=runtime, code=code, name="logs")

    response = cluster.run_processor(processor["id"], plane=allowing)

    assert (response.status_code, response.text) == (200, "logged")
    items = items_of(cluster, response, processor["id"])
    assert [(item["kind"], item["payload"]) for item in items[1:-1]] == [
        ("log", "first line"),
        ("log", '{"second":2,"ok":true}'),
        ("log", "from console 3"),
    ]


def test_console_log_is_recorded_without_the_prelude(runtime: str, cluster: Cluster, allowing: Plane) -> None:
    processor = cluster.create_processor(
        runtime=runtime,
        code="function main(request) { console.log('saw', request.method); return 'plain'; }",
        name="console",
    )

    response = cluster.run_processor(processor["id"], plane=allowing, prelude=False, method="PATCH")

    assert (response.status_code, response.text) == (200, "plain")
    items = items_of(cluster, response, processor["id"])
    assert [(item["kind"], item["payload"]) for item in items[1:-1]] == [("log", "saw PATCH")]


# -- JSON in and out -----------------------------------------------------------------------------


def test_returned_object_becomes_a_json_body(runtime: str, cluster: Cluster, allowing: Plane) -> None:
    code = """function main(request) {
      const input = JSON.parse(request.body);
      return {sum: input.a + input.b, echo: input, tags: ['x', 'y']};
    }"""
    processor = cluster.create_processor(runtime=runtime, code=code, name="json")
    sent = {"a": 2, "b": 3, "name": "Zoë ☃", "nested": {"list": [1, None, True]}}

    response = cluster.run_processor(processor["id"], plane=allowing, prelude=False, method="POST", json=sent)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"sum": 5, "echo": sent, "tags": ["x", "y"]}


def test_respond_with_sets_status_headers_and_json_body(
    runtime: str, cluster: Cluster, allowing: Plane
) -> None:
    code = """async function main(fh, request) {
      const order = JSON.parse(request.body);
      fh.respond_with({
        code: 201,
        headers: {'Content-Type': 'application/json', 'X-Order': String(order.id),
                  'Set-Cookie': ['a=1', 'b=2']},
        body: JSON.stringify({created: order.id, items: order.items.length}),
      });
    }"""
    processor = cluster.create_processor(runtime=runtime, code=code, name="respond_with")

    response = cluster.run_processor(
        processor["id"], plane=allowing, method="POST", json={"id": 17, "items": ["a", "b", "c"]}
    )

    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-order"] == "17"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert response.json() == {"created": 17, "items": 3}
    final = items_of(cluster, response, processor["id"])[-1]["payload"]
    assert final["headers"]["x-order"] == ["17"] and final["headers"]["set-cookie"] == ["a=1", "b=2"]


def test_response_object_with_an_object_body_is_sent_as_json(
    runtime: str, cluster: Cluster, allowing: Plane
) -> None:
    processor = cluster.create_processor(
        runtime=runtime,
        code="async function main(fh, r) { return {code: 202, body: {accepted: true, list: [1, 2]}}; }",
        name="202",
    )

    response = cluster.run_processor(processor["id"], plane=allowing)

    assert response.status_code == 202, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"accepted": True, "list": [1, 2]}


# -- outbound requests -----------------------------------------------------------------------------


def test_dispatch_really_sends_and_is_recorded_as_request_and_response_items(
    runtime: str, cluster: Cluster, allowing: Plane, target: TargetServer
) -> None:
    code = f"""async function main(fh, request) {{
      const answer = await fh.dispatch_request('{target.url}/hook?status=201&src=ffaas', {{
        method: 'POST',
        headers: {{'Content-Type': 'application/json', 'X-Relay': 'ffaas'}},
        body: JSON.stringify({{forwarded: JSON.parse(request.body)}}),
      }});
      return {{code: 200, body: {{
        target_code: answer.code,
        target_header: answer.headers['x-target'],
        target_body: JSON.parse(answer.body),
      }}}};
    }}"""
    processor = cluster.create_processor(runtime=runtime, code=code, name="dispatch")

    response = cluster.run_processor(processor["id"], plane=allowing, method="POST", content=b'{"order": 7}')

    assert response.status_code == 200, response.text
    sent = b'{"forwarded":{"order":7}}'
    target_answer = {"received": sent.decode(), "method": "POST", "path": "/hook"}
    assert response.json() == {
        "target_code": 201,
        "target_header": ["ffaas-e2e"],
        "target_body": target_answer,
    }
    [received] = target.received_on("/hook")
    assert (received.method, received.path, received.body) == ("POST", "/hook?status=201&src=ffaas", sent)
    assert received.headers["x-relay"] == ["ffaas"]
    assert received.headers["content-type"] == ["application/json"]

    items = items_of(cluster, response, processor["id"])
    assert [(item["kind"], item.get("inc")) for item in items] == [
        ("request", 0),
        ("request", 1),
        ("response", None),
        ("response", None),
    ]
    outbound, answered = items[1]["payload"], items[2]
    assert set(outbound) >= REQUEST_PAYLOAD_KEYS, outbound
    assert (outbound["method"], outbound["path"], outbound["query"]) == (
        "POST",
        "/hook",
        "status=201&src=ffaas",
    )
    assert outbound["headers"]["x-relay"] == ["ffaas"]
    assert outbound["headers"]["content-type"] == ["application/json"]
    assert outbound["body"] == sent.decode()
    assert answered["request"] == items[1]["id"]
    assert set(answered["payload"]) == RESPONSE_PAYLOAD_KEYS, answered
    assert answered["payload"]["code"] == 201
    assert answered["payload"]["headers"]["x-target"] == ["ffaas-e2e"]
    assert json.loads(answered["payload"]["body"]) == target_answer


def test_without_a_response_the_last_dispatched_body_is_returned(
    runtime: str, cluster: Cluster, allowing: Plane, target: TargetServer
) -> None:
    code = f"""async function main(fh, request) {{
      await fh.dispatch_request('{target.url}/first', {{method: 'PUT', body: 'one'}});
      await fh.dispatch_request('{target.url}/last');
    }}"""
    processor = cluster.create_processor(runtime=runtime, code=code, name="default response")

    response = cluster.run_processor(processor["id"], plane=allowing, method="POST", content=b"incoming")

    assert response.status_code == 200, response.text
    assert response.json() == {"received": "", "method": "GET", "path": "/last"}
    items = items_of(cluster, response, processor["id"])
    outbound = [item for item in items if item["kind"] == "request" and item["inc"] > 0]
    assert [(item["inc"], item["payload"]["method"], item["payload"]["path"]) for item in outbound] == [
        (1, "PUT", "/first"),
        (2, "GET", "/last"),
    ]
    assert target.received_on("/first")[0].body == b"one"


def test_typescript_webhook_relay_reshapes_and_forwards_the_payload(
    runtime: str, cluster: Cluster, allowing: Plane, target: TargetServer
) -> None:
    code = f"""
interface Push {{
  repository: {{ full_name: string }};
  pusher: {{ name: string }};
  commits: {{ id: string; message: string }}[];
}}
interface ChatMessage {{ channel: string; text: string; commits: string[] }}

const CHAT_URL: string = '{target.url}/chat?status=202';

function reshape(push: Push): ChatMessage {{
  return {{
    channel: '#' + push.repository.full_name.split('/')[1],
    text: `${{push.pusher.name}} pushed ${{push.commits.length}} commit(s)`,
    commits: push.commits.map((commit) => commit.id.slice(0, 7)),
  }};
}}

async function main(fh: any, request: {{ body: string }}): Promise<void> {{
  const message: ChatMessage = reshape(JSON.parse(request.body) as Push);
  fh.log(`relaying to ${{message.channel}}`);
  const answer = await fh.dispatch_request(CHAT_URL, {{
    method: 'POST',
    headers: {{ 'content-type': 'application/json' }},
    body: JSON.stringify(message),
  }});
  const headers = {{ 'content-type': 'application/json' }};
  fh.respond_with({{ code: answer.code, headers, body: answer.body }});
}}
"""
    processor = cluster.create_processor(runtime=runtime, code=code, language="ts", name="relay")
    push = {
        "ref": "refs/heads/main",
        "repository": {"full_name": "acme/rockets"},
        "pusher": {"name": "ada"},
        "commits": [
            {"id": "0123456789abcdef", "message": "fix"},
            {"id": "fedcba9876543210", "message": "feat"},
        ],
    }

    response = cluster.run_processor(processor["id"], plane=allowing, method="POST", json=push)

    expected = {"channel": "#rockets", "text": "ada pushed 2 commit(s)", "commits": ["0123456", "fedcba9"]}
    [received] = target.received_on("/chat")
    assert received.body == json.dumps(expected, separators=(",", ":")).encode()
    assert received.headers["content-type"] == ["application/json"]
    assert response.status_code == 202, response.text
    assert response.json() == {"received": received.body.decode(), "method": "POST", "path": "/chat"}
    items = items_of(cluster, response, processor["id"])
    assert [item["kind"] for item in items] == ["request", "log", "request", "response", "response"]
    assert items[1]["payload"] == "relaying to #rockets"
    assert items[3]["payload"]["code"] == 202


def test_forbidden_targets_reject_the_dispatch_catchably_and_are_recorded(
    runtime: str, cluster: Cluster, allowing: Plane, target: TargetServer
) -> None:
    # Link-local (the cloud metadata service) and private addresses are denied even where loopback is allowed.
    urls = ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/internal", f"{target.url}/allowed"]
    code = f"""async function main(fh, request) {{
      const outcomes = [];
      for (const url of {json.dumps(urls)}) {{
        try {{
          const answer = await fh.dispatch_request(url, {{method: 'POST', body: 'secret'}});
          outcomes.push('reached ' + answer.code);
        }} catch (error) {{
          outcomes.push(error.message);
        }}
      }}
      return {{code: 200, body: outcomes}};
    }}"""
    processor = cluster.create_processor(runtime=runtime, code=code, name="forbidden")

    response = cluster.run_processor(processor["id"], plane=allowing)

    assert response.status_code == 200, response.text
    metadata, private, allowed = response.json()
    assert "169.254.169.254" in metadata and "link-local" in metadata and "FFAAS_OUTBOUND_ALLOW" in metadata
    assert "10.0.0.1" in private and "private" in private and "FFAAS_OUTBOUND_ALLOW" in private
    assert allowed == "reached 200"
    items = items_of(cluster, response, processor["id"])
    assert [(item["kind"], item.get("inc")) for item in items] == [
        ("request", 0),
        ("request", 1),
        ("response", None),
        ("request", 2),
        ("response", None),
        ("request", 3),
        ("response", None),
        ("response", None),
    ]
    assert items[2] == {**items[2], "request": items[1]["id"], "payload": {"error": metadata}}
    assert items[4] == {**items[4], "request": items[3]["id"], "payload": {"error": private}}
    assert items[6]["request"] == items[5]["id"] and items[6]["payload"]["code"] == 200


def test_loopback_is_denied_without_the_allow_list(
    runtime: str, cluster: Cluster, strict: Plane, target: TargetServer
) -> None:
    caught = cluster.create_processor(
        runtime=runtime,
        code=f"""async function main(fh, request) {{
          try {{ await fh.dispatch_request('{target.url}/strict-caught', {{method: 'POST', body: 'x'}}); }}
          catch (error) {{ return {{code: 200, body: {{refused: error.message}}}}; }}
          return 'reached';
        }}""",
        name="loopback caught",
    )
    uncaught = cluster.create_processor(
        runtime=runtime,
        code=f"async function main(fh, r) {{ await fh.dispatch_request('{target.url}/strict-uncaught'); }}",
        name="loopback uncaught",
    )

    response = cluster.run_processor(caught["id"], plane=strict)
    failed = cluster.run_processor(uncaught["id"], plane=strict)

    assert response.status_code == 200, response.text
    refused = response.json()["refused"]
    assert refused.startswith(f"request to {target.url}/strict-caught refused: ")
    assert "loopback" in refused and "FFAAS_OUTBOUND_ALLOW" in refused
    items = items_of(cluster, response, caught["id"])
    assert items[2] == {
        **items[2],
        "kind": "response",
        "request": items[1]["id"],
        "payload": {"error": refused},
    }
    message = assert_error(failed, 500, "the processor failed: Error: request to ", "FFAAS_OUTBOUND_ALLOW")
    assert "loopback" in message
    assert target.received_on("/strict-caught") == [] and target.received_on("/strict-uncaught") == []


# -- failures --------------------------------------------------------------------------------------


def test_thrown_error_is_500_with_its_line_and_the_stack_in_the_conversation(
    runtime: str, cluster: Cluster, allowing: Plane
) -> None:
    code = """async function main(fh, request) {
      fh.log('about to fail');
      const data = JSON.parse(request.body);
      throw new TypeError('bad input: ' + data.why);
    }"""
    processor = cluster.create_processor(runtime=runtime, code=code, name="throws")

    response = cluster.run_processor(processor["id"], plane=allowing, method="POST", json={"why": "because"})

    assert response.status_code == 500
    assert response.json() == {"code": 500, "message": "the processor failed: TypeError: bad input: because"}
    assert "at main" not in response.text
    conversation = cluster.conversation(response)
    assert "TypeError: bad input: because" in conversation["error_detail"]
    assert "at main" in conversation["error_detail"]
    items = items_of(cluster, response, processor["id"])
    assert [(item["kind"], item["payload"]) for item in items[1:-1]] == [("log", "about to fail")]


def test_error_response_is_recorded_as_the_bytes_sent(
    runtime: str, cluster: Cluster, allowing: Plane
) -> None:
    processor = cluster.create_processor(
        runtime=runtime, code="function main(r) { throw new Error('Zoë: no ☃ today'); }"
    )

    response = cluster.run_processor(processor["id"], plane=allowing, prelude=False)

    assert response.json() == {"code": 500, "message": "the processor failed: Error: Zoë: no ☃ today"}
    final = cluster.conversation(response)["audit_items"][-1]["payload"]
    assert final["body"] == response.text, "the recorded final response differs from the one sent"
    assert final["headers"]["content-type"] == [response.headers["content-type"]]


def test_property_of_undefined_is_500_naming_the_type_error(
    runtime: str, cluster: Cluster, allowing: Plane
) -> None:
    processor = cluster.create_processor(
        runtime=runtime, code="function main(request) { return request.nothing.deeper; }"
    )

    response = cluster.run_processor(processor["id"], plane=allowing, prelude=False)

    assert_error(response, 500, "the processor failed: TypeError: ", "deeper")
    assert items_of(cluster, response, processor["id"])[-1]["payload"]["code"] == 500


def test_rejected_promise_is_500(runtime: str, cluster: Cluster, allowing: Plane) -> None:
    processor = cluster.create_processor(
        runtime=runtime,
        code="async function main(fh, r) { await null; return Promise.reject(new RangeError('later')); }",
    )

    response = cluster.run_processor(processor["id"], plane=allowing)

    assert response.status_code == 500
    assert response.json() == {"code": 500, "message": "the processor failed: RangeError: later"}
    assert "RangeError: later" in cluster.conversation(response)["error_detail"]


def test_looping_processor_is_504_while_others_keep_answering(
    runtime: str, cluster: Cluster, allowing: Plane, target: TargetServer
) -> None:
    signalling = cluster.create_processor(
        runtime=runtime,
        code=f"async function main(fh, r) {{\n  await fh.dispatch_request('{target.url}/loop-started');\n"
        "  while (true) {}\n}",
        name="loop after a signal",
    )
    plain = cluster.create_processor(runtime=runtime, code="function main(r) { for (;;) {} }", name="loop")
    prompt = cluster.create_processor(
        runtime=runtime, code="function main(r) { return 'prompt ' + r.method; }", name="prompt"
    )
    answers: dict[str, httpx.Response] = {}

    def run(name: str, processor_id: str, prelude: bool) -> None:
        answers[name] = cluster.run_processor(processor_id, plane=allowing, prelude=prelude)

    loops = [
        threading.Thread(target=run, args=("signalling", signalling["id"], True)),
        threading.Thread(target=run, args=("plain", plain["id"], False)),
    ]
    for thread in loops:
        thread.start()
    deadline = time.monotonic() + 10
    while not target.received_on("/loop-started"):
        assert time.monotonic() < deadline, "the looping processor never started"
        time.sleep(0.01)

    # While the loop spins, another processor answers (and the loop has not been answered yet).
    quick = [cluster.run_processor(prompt["id"], plane=allowing, prelude=False) for _ in range(5)]
    still_looping = loops[0].is_alive()
    for thread in loops:
        thread.join()

    assert [(answer.status_code, answer.text) for answer in quick] == [(200, "prompt GET")] * 5
    assert still_looping
    for name in ("signalling", "plain"):
        assert_error(answers[name], 504, f"run exceeded {RUN_TIMEOUT_MS} ms (FFAAS_RUN_TIMEOUT_MS)")
    items = items_of(cluster, answers["signalling"], signalling["id"])
    assert [(item["kind"], item.get("inc")) for item in items] == [
        ("request", 0),
        ("request", 1),
        ("response", None),
        ("response", None),
    ]
    assert items[-1]["payload"]["code"] == 504
    assert cluster.run_processor(prompt["id"], plane=allowing, prelude=False).text == "prompt GET"


# -- updates reach every data plane before the PUT answers -----------------------------------------


def test_update_is_served_by_every_data_plane_right_after_the_put(runtime: str, cluster: Cluster) -> None:
    processor = cluster.create_processor(
        runtime=runtime, code="function main(r) { return 'version 1'; }", name="versions"
    )
    for plane in cluster.data_planes:
        assert cluster.run_processor(processor["id"], plane=plane, prelude=False).text == "version 1"

    for version in range(2, 7):
        language = "ts" if version % 2 else "js"
        typed = ": unknown" if language == "ts" else ""
        fields = {
            "name": f"versions {version}",
            "language": language,
            "runtime": runtime,
            "code": f"function main(r{typed}) {{ return 'version {version}'; }}",
        }
        replaced = cluster.admin.put(processors_url(cluster, processor["id"]), json=fields)
        assert replaced.status_code == 200, replaced.text
        for plane in cluster.data_planes:
            answer = cluster.run_processor(processor["id"], plane=plane, prelude=False)
            assert (answer.status_code, answer.text) == (200, f"version {version}"), plane

    assert cluster.admin.delete(processors_url(cluster, processor["id"])).status_code == 204
    for plane in cluster.data_planes:
        assert_error(cluster.run_processor(processor["id"], plane=plane), 404, processor["id"])
