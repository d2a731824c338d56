"""`ffaas processor ...` against real planes: create from a file, list, get, update, run, delete."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.cli.conftest import Ffaas
from tests.e2e.cluster import UUID, Cluster

RELAY_TS = """async function main(fh: any, request: any) {
  fh.log("got", request.method);
  const type = request.headers["content-type"];
  return {code: 201, headers: {"x-relay": "yes"}, body: {seen: request.body, type: type}};
}
"""
PLAIN_JS = "function main(request) { return request.method + ' ' + request.body; }\n"


def test_create_list_get_update_delete(ffaas: Ffaas, cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "relay.ts").write_text(RELAY_TS)
    (tmp_path / "plain.js").write_text(PLAIN_JS)

    created = ffaas.ok("processor", "create", "relay", str(tmp_path / "relay.ts"), "--json").json()
    assert UUID.fullmatch(created["id"])
    assert {key: created[key] for key in ("name", "language", "runtime", "code")} == {
        "name": "relay",
        "language": "ts",
        "runtime": "v8",
        "code": RELAY_TS,
    }
    people = ffaas.ok("processor", "create", "plain", str(tmp_path / "plain.js"), "--runtime", "wasm")
    assert "created processor plain" in people.stdout and "(js, wasm)" in people.stdout

    listed = ffaas.ok("processor", "list", "--json").json()
    assert created in listed and {"plain"} <= {processor["name"] for processor in listed}
    assert "relay" in ffaas.ok("processor", "list").stdout
    assert ffaas.ok("processor", "get", "relay", "--json").json() == created
    shown = ffaas.ok("processor", "get", created["id"]).stdout
    assert "runtime    v8" in shown and 'fh.log("got", request.method);' in shown
    assert f"*   {created['active_version_id']}" in shown  # the version history, the active one marked

    updated = ffaas.ok(
        "processor", "update", "relay", str(tmp_path / "plain.js"), "--name", "relay-2", "--json"
    ).json()
    assert {key: updated[key] for key in ("id", "name", "language", "runtime", "code")} == {
        "id": created["id"],
        "name": "relay-2",
        "language": "js",
        "runtime": "v8",  # kept
        "code": PLAIN_JS,
    }
    assert len(updated["version_history"]) == 2
    assert cluster.admin.get(f"{cluster.admin_url}/admin/processor/{created['id']}").json() == updated
    kept = ffaas.ok("processor", "update", created["id"], str(tmp_path / "relay.ts"), "--runtime", "wasm")
    assert "updated processor relay-2" in kept.stdout and "(ts, wasm)" in kept.stdout

    assert ffaas.ok("processor", "delete", "relay-2").stdout.strip() == f"deleted processor {created['id']}"
    assert ffaas("processor", "get", created["id"]).code == 1


def test_run_prints_the_response_and_the_conversation(ffaas: Ffaas, cluster: Cluster, tmp_path: Path) -> None:
    processor = cluster.create_processor(RELAY_TS, language="ts", name="run-demo")
    body_file = tmp_path / "body.json"
    body_file.write_text('{"a": 1}')

    ran = ffaas.ok(
        "processor",
        "run",
        "run-demo",
        "--prelude",
        "-d",
        f"@{body_file}",
        "-H",
        "Content-Type: application/json",
    )

    assert json.loads(ran.stdout) == {"seen": '{"a": 1}', "type": ["application/json"]}
    assert "HTTP 201 Created" in ran.stderr
    conversation_id = ran.stderr.split("conversation ")[1].split()[0]
    conversation = cluster.http.get(f"{cluster.admin_url}/conversation/{conversation_id}").json()
    assert conversation["request_processor_id"] == processor["id"]
    assert conversation["audit_items"][0]["payload"]["method"] == "POST"  # -d implies POST

    as_json = ffaas.ok(
        "processor", "run", processor["id"], "--prelude", "-X", "put", "-d", "hi", "-i", "--json"
    )
    answer = as_json.json()
    assert answer["status"] == 201 and answer["headers"]["x-relay"] == ["yes"]
    assert json.loads(answer["body"]) == {"seen": "hi"}  # no content-type: undefined, left out
    assert answer["conversation_id"] == answer["headers"]["fh-conversation-id"][0]
    assert as_json.stderr == ""


def test_run_without_prelude_and_a_failing_run(ffaas: Ffaas, cluster: Cluster) -> None:
    plain = cluster.create_processor(PLAIN_JS, name="plain-run")
    ran = ffaas.ok("processor", "run", plain["id"], "-d", "body")
    assert ran.stdout == "POST body"

    # The prelude's main(fh, request) run without it gets the request as `fh`: it fails, and shows so.
    relay = cluster.create_processor(RELAY_TS, language="ts", name="relay-without-prelude")
    failed = ffaas("processor", "run", relay["id"])
    assert failed.code == 1
    assert json.loads(failed.stdout)["code"] == 500
    assert "HTTP 500" in failed.stderr and "conversation " in failed.stderr


def test_the_language_comes_from_the_extension(ffaas: Ffaas, tmp_path: Path) -> None:
    (tmp_path / "code.py").write_text("print('no')")

    refused = ffaas("processor", "create", "python", str(tmp_path / "code.py"))

    assert refused.code == 2
    assert "cannot tell the language of code.py: name it .js or .ts" in refused.error_line


def test_code_that_does_not_compile_is_refused_with_the_compilers_message(
    ffaas: Ffaas, tmp_path: Path
) -> None:
    (tmp_path / "broken.js").write_text("function main(request) { return 1 +; }\n")

    refused = ffaas("processor", "create", "broken", str(tmp_path / "broken.js"))

    assert refused.code == 1
    assert "(HTTP 400)" in refused.error_line and "1:" in refused.error_line


def test_versions_version_and_rollback(ffaas: Ffaas, cluster: Cluster, tmp_path: Path) -> None:
    for number in (1, 2, 3):
        (tmp_path / f"v{number}.js").write_text(f"function main(request) {{ return 'v{number}'; }}\n")
    created = ffaas.ok("processor", "create", "versioned", str(tmp_path / "v1.js"), "--json").json()
    ffaas.ok("processor", "update", "versioned", str(tmp_path / "v2.js"))
    third = ffaas.ok("processor", "update", "versioned", str(tmp_path / "v3.js"), "--json").json()
    first_id, second_id, third_id = (version["id"] for version in third["version_history"])
    assert first_id == created["active_version_id"] and third["active_version_id"] == third_id

    listed = ffaas.ok("processor", "versions", "versioned").stdout
    rows = [
        line.split()
        for line in listed.splitlines()
        if first_id in line or second_id in line or third_id in line
    ]
    assert [row[:2] for row in rows] == [[first_id, "versioned"], [second_id, "versioned"], ["*", third_id]]
    as_json = ffaas.ok("processor", "versions", created["id"], "--json").json()
    assert as_json == {"active_version_id": third_id, "version_history": third["version_history"]}

    shown = ffaas.ok("processor", "version", "versioned", first_id).stdout
    assert f"version    {first_id}" in shown and "runtime    v8" in shown
    assert "function main(request) { return 'v1'; }" in shown
    version_json = ffaas.ok("processor", "version", created["id"], second_id, "--json").json()
    assert (
        version_json
        == cluster.admin.get(
            f"{cluster.admin_url}/admin/processor/{created['id']}/version/{second_id}"
        ).json()
    )
    assert version_json["code"] == "function main(request) { return 'v2'; }\n"

    previous = ffaas.ok("processor", "rollback", "versioned")
    assert previous.stdout.strip() == f"processor {created['id']} now runs version {second_id}"
    assert cluster.run_processor(created["id"], prelude=False).text == "v2"  # served once answered
    named = ffaas.ok("processor", "rollback", created["id"], first_id, "--json").json()
    assert named == cluster.admin.get(f"{cluster.admin_url}/admin/processor/{created['id']}").json()
    assert named["active_version_id"] == first_id and len(named["version_history"]) == 3
    assert cluster.run_processor(created["id"], prelude=False).text == "v1"

    oldest = ffaas("processor", "rollback", "versioned")
    assert oldest.code == 1 and "there is no earlier version to roll back to (HTTP 400)" in oldest.error_line
    missing = "00000000-0000-0000-0000-0000000000ef"
    unknown = ffaas("processor", "version", created["id"], missing)
    assert unknown.code == 1
    assert unknown.error_line == f"error: version {missing} not found in processor {created['id']} (HTTP 404)"
    unknown_rollback = ffaas("processor", "rollback", created["id"], missing)
    assert unknown_rollback.error_line == unknown.error_line
