"""`ffaas call ENDPOINT[/PATH]` against real planes: the run's answer, its conversation, --json."""

from __future__ import annotations

import json

from tests.e2e.cli.conftest import Ffaas
from tests.e2e.cluster import Cluster


def test_call_by_name_with_a_sub_path_query_body_and_header(
    ffaas: Ffaas, cluster: Cluster, echo_wasm: bytes
) -> None:
    endpoint_id = cluster.new_deployed_endpoint("call-demo", echo_wasm)

    ran = ffaas.ok("call", "call-demo/hello/world?status=201", "-d", "hi", "-H", "X-Echo: yes")

    echoed = json.loads(ran.stdout)  # the body alone on stdout
    assert echoed["method"] == "POST" and echoed["path"] == "/hello/world" and echoed["query"] == "status=201"
    assert echoed["x_echo"] == "yes" and echoed["body"] == "hi"
    assert ran.stderr.splitlines()[0] == "HTTP 201 Created"
    conversation_id = ran.stderr.splitlines()[-1].split()[1]
    conversation = cluster.http.get(f"{cluster.admin_url}/conversation/{conversation_id}").json()
    assert conversation["endpoint_id"] == endpoint_id and conversation["status"] == 201


def test_call_by_id_needs_only_the_data_plane(ffaas: Ffaas, cluster: Cluster, echo_wasm: bytes) -> None:
    endpoint_id = cluster.new_deployed_endpoint("call-by-id", echo_wasm)
    nowhere = {"FFAAS_URL": "http://127.0.0.1:9", "FFAAS_ADMIN_TOKEN": None}

    ran = ffaas.ok("call", f"{endpoint_id}?a=1", "-X", "DELETE", "--json", env=nowhere)

    answer = ran.json()
    assert answer["status"] == 200
    assert answer["headers"]["x-ffaas-example"] == ["echo"]
    assert answer["conversation_id"] == answer["headers"]["fh-conversation-id"][0]
    echoed = json.loads(answer["body"])
    assert echoed["method"] == "DELETE" and echoed["path"] == "" and echoed["query"] == "a=1"


def test_a_run_answering_an_error_exits_1_after_showing_it(
    ffaas: Ffaas, cluster: Cluster, echo_wasm: bytes
) -> None:
    endpoint_id = cluster.new_deployed_endpoint("call-error", echo_wasm)

    ran = ffaas("call", f"{endpoint_id}/x?status=503", "-i")

    assert ran.code == 1
    assert json.loads(ran.stdout)["query"] == "status=503"
    assert (
        "HTTP 503" in ran.stderr and "x-ffaas-example: echo" in ran.stderr and "conversation " in ran.stderr
    )


def test_an_unknown_endpoint_is_one_line_and_exit_1(ffaas: Ffaas) -> None:
    missing = "00000000-0000-0000-0000-0000000000aa"

    ran = ffaas("call", missing)

    assert ran.code == 1 and ran.stdout == ""
    assert ran.error_line == f"error: endpoint {missing} not found or has no deploy (HTTP 404)"


def test_a_malformed_header_or_unreadable_body_file_is_bad_usage(ffaas: Ffaas) -> None:
    endpoint = "00000000-0000-0000-0000-0000000000ab"

    header = ffaas("call", endpoint, "-H", "no colon")
    missing = ffaas("call", endpoint, "-d", "@/no/such/file")

    assert header.code == 2 and "-H wants 'Name: value', got 'no colon'" in header.error_line
    assert (
        missing.code == 2
        and "cannot read /no/such/file for -d: No such file or directory" in missing.error_line
    )
