"""The processor examples (examples/processors/), saved and run exactly as examples/README.md shows.

Each example is saved through a real control plane (so esbuild checks and transpiles it),
run by a real data plane on each runtime (V8, and quickjs in the wasm sandbox: the README's body
with `"runtime": "wasm"`), and read back as a conversation. The relay forwards to a
local HTTP server (the data plane allows 127.0.0.1 for outbound requests); nothing reaches
the internet. The JSON for `POST /admin/processor` is built by the README's own commands.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import RedisServer
from tests.e2e.cluster import Cluster, TargetServer, assert_error
from tests.e2e.conftest import running_cluster

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "processors"
README = REPO / "examples" / "README.md"

# The README's commands that turn a file into the body of POST /admin/processor ($FILE, $NAME, $CODE_LANG).
PYTHON_BUILDER = (
    'python3 -c \'import json, sys; print(json.dumps({"name": sys.argv[2], "language": sys.argv[3], '
    '"runtime": "v8", "code": open(sys.argv[1]).read()}))\' "$FILE" "$NAME" "$CODE_LANG"'
)
JQ_BUILDER = (
    'jq -n --rawfile code "$FILE" --arg name "$NAME" --arg lang "$CODE_LANG" '
    "'{name: $name, language: $lang, runtime: \"v8\", code: $code}'"
)


@pytest.fixture
def target() -> Iterator[TargetServer]:
    with TargetServer() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    settings = {"FFAAS_OUTBOUND_ALLOW": "127.0.0.1"}
    with running_cluster(
        tmp_path_factory.mktemp("processor-examples"), redis_server, settings=settings
    ) as cluster:
        yield cluster


def processor_json(builder: str, path: Path, name: str, language: str) -> dict[str, Any]:
    """The body the README's `builder` command prints for `path`."""
    if builder.startswith("python3 "):
        builder = builder.replace("python3 ", f"{sys.executable} ", 1)  # any Python 3 will do
    result = subprocess.run(
        ["sh", "-c", builder],
        env={"FILE": str(path), "NAME": name, "CODE_LANG": language, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    fields: dict[str, Any] = json.loads(result.stdout)
    return fields


@pytest.fixture(params=["v8", "wasm"])
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def save(cluster: Cluster, file_name: str, language: str, runtime: str) -> dict[str, Any]:
    path = EXAMPLES / file_name
    fields = processor_json(PYTHON_BUILDER, path, file_name, language)
    assert fields == {"name": file_name, "language": language, "runtime": "v8", "code": path.read_text()}
    fields["runtime"] = runtime
    response = cluster.admin.post(  # with the header the README's curl sends
        f"{cluster.admin_url}/admin/processor",
        content=json.dumps(fields),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 201, response.text
    processor: dict[str, Any] = response.json()
    assert processor["code"] == path.read_text()
    return processor


def kinds_and_logs(cluster: Cluster, response: httpx.Response) -> list[tuple[str, Any]]:
    items = cluster.conversation(response)["audit_items"]
    return [(item["kind"], item["payload"] if item["kind"] == "log" else item.get("inc")) for item in items]


def test_every_example_is_covered_here() -> None:
    shipped = {path.name for path in EXAMPLES.iterdir()}

    assert shipped == {"hello.js", "log-and-json.js", "webhook-relay.ts", "push-event.json"}


def test_readme_shows_the_builders_and_every_example() -> None:
    readme = README.read_text()

    assert PYTHON_BUILDER in readme and JQ_BUILDER in readme
    for name in ("hello.js", "log-and-json.js", "webhook-relay.ts", "push-event.json"):
        assert f"processors/{name}" in readme, name


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_jq_builder_gives_the_same_body_as_the_python_one() -> None:
    for name, language in (("hello.js", "js"), ("webhook-relay.ts", "ts")):
        path = EXAMPLES / name
        assert processor_json(JQ_BUILDER, path, name, language) == processor_json(
            PYTHON_BUILDER, path, name, language
        )


def test_hello_answers_hello_world(runtime: str, cluster: Cluster) -> None:
    processor = save(cluster, "hello.js", "js", runtime)

    response = cluster.run_processor(processor["id"], prelude=False, method="POST", content=b"ignored")

    assert (response.status_code, response.text) == (200, "Hello, world!\n")
    assert response.headers["content-type"].startswith("text/plain")
    assert kinds_and_logs(cluster, response) == [("request", 0), ("response", None)]


def test_log_and_json_logs_twice_and_answers_json(runtime: str, cluster: Cluster) -> None:
    processor = save(cluster, "log-and-json.js", "js", runtime)

    response = cluster.run_processor(processor["id"], method="PUT", content=b"12345")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"ok": True, "method": "PUT"}
    assert kinds_and_logs(cluster, response) == [
        ("request", 0),
        ("log", "one"),
        ("log", 'two {"n":2}'),
        ("response", None),
    ]


def test_webhook_relay_reshapes_the_push_and_forwards_it(
    runtime: str, cluster: Cluster, target: TargetServer
) -> None:
    processor = save(cluster, "webhook-relay.ts", "ts", runtime)
    assert processor["language"] == "ts"
    push = (EXAMPLES / "push-event.json").read_bytes()
    chat_url = f"{target.url}/chat?status=202"

    response = cluster.run_processor(
        processor["id"],
        method="POST",
        query=f"target={quote(chat_url, safe='')}",
        content=push,
        headers={"content-type": "application/json"},
    )

    expected = {
        "text": "ada pushed 2 commits to acme/rockets:main",
        "repository": "acme/rockets",
        "branch": "main",
        "commits": [
            {"sha": "0123456", "title": "Fix the fuel gauge"},
            {"sha": "fedcba9", "title": "Add a countdown"},
        ],
    }
    [received] = target.received_on("/chat")
    assert (received.method, received.path) == ("POST", "/chat?status=202")
    assert received.body == json.dumps(expected, separators=(",", ":")).encode()
    assert received.headers["content-type"] == ["application/json"]
    assert received.headers["x-relayed-by"] == ["ffaas"]
    # The caller gets the target's answer.
    assert response.status_code == 202, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"received": received.body.decode(), "method": "POST", "path": "/chat"}
    assert kinds_and_logs(cluster, response) == [
        ("request", 0),
        ("log", f"relaying 2 commit(s) on main to {chat_url}"),
        ("request", 1),
        ("response", None),
        ("log", f"{chat_url} answered 202"),
        ("response", None),
    ]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", "the body is not JSON: "),
        (b'{"ref": "refs/heads/main"}', "the body is not a push event"),
    ],
    ids=["not-json", "not-a-push"],
)
def test_webhook_relay_refuses_a_body_that_is_not_a_push_and_forwards_nothing(
    runtime: str, cluster: Cluster, target: TargetServer, body: bytes, error: str
) -> None:
    processor = save(cluster, "webhook-relay.ts", "ts", runtime)
    before = len(target.received)

    response = cluster.run_processor(
        processor["id"], method="POST", query=f"target={quote(target.url + '/refused')}", content=body
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(error)
    assert len(target.received) == before
    assert [kind for kind, _ in kinds_and_logs(cluster, response)] == ["request", "log", "response"]


def test_webhook_relay_to_a_forbidden_target_fails_naming_the_setting(runtime: str, cluster: Cluster) -> None:
    processor = save(cluster, "webhook-relay.ts", "ts", runtime)

    response = cluster.run_processor(
        processor["id"],
        method="POST",
        query="target=" + quote("http://169.254.169.254/latest/meta-data/", safe=""),
        content=(EXAMPLES / "push-event.json").read_bytes(),
    )

    assert_error(response, 500, "the processor failed: Error: request to ", "FFAAS_OUTBOUND_ALLOW")
