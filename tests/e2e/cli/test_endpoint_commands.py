"""`ffaas endpoint ...` against real planes: every command, people's output and --json."""

from __future__ import annotations

import os
import pty
import re
import subprocess
from pathlib import Path

from tests.e2e.cli.conftest import FFAAS, Ffaas
from tests.e2e.cluster import NIL_UUID, UUID, Cluster

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def test_create_list_get_delete(ffaas: Ffaas, cluster: Cluster) -> None:
    created = ffaas.ok("endpoint", "create", "crud-demo", "--json").json()
    assert UUID.fullmatch(created["id"]) and created["name"] == "crud-demo"
    assert created == cluster.get_endpoint(created["id"]).json()
    assert created["active_deploy_id"] == NIL_UUID

    people = ffaas.ok("endpoint", "create", "crud-demo-2")
    assert re.search(rf"created endpoint crud-demo-2 {UUID.pattern}", people.stdout), people.stdout
    assert cluster.admin_url not in people.stdout and "url" in people.stdout

    listed = ffaas.ok("endpoint", "list", "--json").json()
    assert created in listed
    table = ffaas.ok("endpoint", "list").stdout
    assert created["id"] in table and "crud-demo" in table and "none" in table

    assert ffaas.ok("endpoint", "get", created["id"], "--json").json() == created
    shown = ffaas.ok("endpoint", "get", "crud-demo").stdout  # a unique name for an id
    assert created["id"] in shown and created["url"] in shown and "no deploys yet" in shown

    deleted = ffaas.ok("endpoint", "delete", "crud-demo")
    assert deleted.stdout.strip() == f"deleted endpoint {created['id']}"
    assert cluster.get_endpoint(created["id"]).status_code == 404
    assert ffaas.ok("endpoint", "delete", "crud-demo-2", "--json").stdout == ""  # 204: nothing to print


def test_deploy_prints_the_deploy_and_the_url(ffaas: Ffaas, cluster: Cluster, examples: Path) -> None:
    endpoint = cluster.create_endpoint("deploy-demo")

    deployed = ffaas.ok("endpoint", "deploy", "deploy-demo", str(examples / "echo.wasm"))

    history = cluster.get_endpoint(endpoint["id"]).json()["deploy_history"]
    assert len(history) == 1
    assert f"deploy   {history[0]['id']}" in deployed.stdout
    assert f"hash     {history[0]['hash']}" in deployed.stdout
    assert f"url      {endpoint['url']}" in deployed.stdout
    as_json = ffaas.ok("endpoint", "deploy", endpoint["id"], str(examples / "hello.wasm"), "--json").json()
    assert as_json == cluster.get_endpoint(endpoint["id"]).json()["deploy_history"][-1]
    assert cluster.call(cluster.data_planes[0], endpoint["id"]).status_code == 200


def test_deploy_shows_an_upload_progress_bar_in_a_terminal(
    ffaas: Ffaas, cluster: Cluster, examples: Path
) -> None:
    endpoint = cluster.create_endpoint("progress-demo")
    module = examples / "echo.wasm"
    environment = {**ffaas.environment({"NO_COLOR": None}), "TERM": "xterm", "COLUMNS": "120"}
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [str(FFAAS), "endpoint", "deploy", endpoint["id"], str(module)],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=environment,
    )
    os.close(terminal)
    screen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the command is done
            break
        if not chunk:
            break
        screen += chunk
    os.close(controller)
    assert process.wait(timeout=60) == 0, screen.decode(errors="replace")

    text = ANSI.sub("", screen.decode(errors="replace"))
    size_kb = f"{module.stat().st_size / 1000:.1f}"
    assert "uploading echo.wasm" in text, text
    assert f"{size_kb}/{size_kb} kB" in text, text  # the bar reached the whole file
    assert f"url      {endpoint['url']}" in text, text


def test_rollback_to_the_previous_deploy_or_a_named_one(
    ffaas: Ffaas, cluster: Cluster, echo_wasm: bytes, hello_wasm: bytes
) -> None:
    endpoint_id = cluster.create_endpoint("rollback-demo")["id"]
    first = cluster.deploy(endpoint_id, echo_wasm)
    second = cluster.deploy(endpoint_id, hello_wasm)

    rolled = ffaas.ok("endpoint", "rollback", "rollback-demo")
    assert rolled.stdout.strip() == f"endpoint {endpoint_id} now runs deploy {first['id']}"
    back = ffaas.ok("endpoint", "rollback", endpoint_id, second["id"], "--json").json()
    assert back == cluster.get_endpoint(endpoint_id).json()
    assert back["active_deploy_id"] == second["id"]

    refused = ffaas("endpoint", "rollback", endpoint_id, "00000000-0000-0000-0000-00000000000f")
    assert refused.code == 1
    assert "deploy 00000000-0000-0000-0000-00000000000f not found" in refused.error_line


def test_env_shows_sets_and_unsets_variables(ffaas: Ffaas, cluster: Cluster) -> None:
    endpoint_id = cluster.create_endpoint("env-demo")["id"]

    assert ffaas.ok("endpoint", "env", "env-demo").stdout.strip() == "no environment variables"
    set_json = ffaas.ok(
        "endpoint", "env", "env-demo", "set", "GREETING=bonjour", "EMPTY=", "URL=a=b", "--json"
    )
    assert set_json.json() == {"GREETING": "bonjour", "EMPTY": "", "URL": "a=b"}
    assert ffaas.ok("endpoint", "env", endpoint_id, "set", "TWO=2").stdout.splitlines() == [
        "EMPTY=",
        "GREETING=bonjour",
        "TWO=2",
        "URL=a=b",
    ]
    unset = ffaas.ok("endpoint", "env", endpoint_id, "unset", "EMPTY", "URL", "NEVER")
    assert unset.stdout.splitlines() == ["GREETING=bonjour", "TWO=2"]
    assert "NEVER was not set" in unset.stderr
    assert ffaas.ok("endpoint", "env", endpoint_id, "--json").json() == {"GREETING": "bonjour", "TWO": "2"}
    assert cluster.admin.get(f"{cluster.admin_url}/endpoint/{endpoint_id}/env").json() == {
        "GREETING": "bonjour",
        "TWO": "2",
    }

    malformed = ffaas("endpoint", "env", endpoint_id, "set", "NOEQUALS")
    assert malformed.code == 2 and "set wants NAME=VALUE, got 'NOEQUALS'" in malformed.error_line
    reserved = ffaas("endpoint", "env", endpoint_id, "set", "HTTP_HOST=x")
    assert reserved.code == 1 and "reserved" in reserved.error_line and "(HTTP 400)" in reserved.error_line


def test_a_name_must_be_unique_and_known(ffaas: Ffaas, cluster: Cluster) -> None:
    first = cluster.create_endpoint("twin")["id"]
    second = cluster.create_endpoint("twin")["id"]

    ambiguous = ffaas("endpoint", "get", "twin")
    assert ambiguous.code == 1
    assert "2 endpoints are named 'twin'" in ambiguous.error_line
    assert first in ambiguous.error_line and second in ambiguous.error_line
    unknown = ffaas("endpoint", "deploy", "no-such-name", __file__)
    assert unknown.code == 1
    assert "no endpoint is named 'no-such-name'" in unknown.error_line
