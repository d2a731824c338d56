"""Processor code at save time: TypeScript transpiled, syntax errors refused with line:column, nothing
stored or published on a refused save, and a missing esbuild answered with 503."""

from __future__ import annotations

import logging
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from control_plane.app import create_app
from control_plane.settings import Settings
from shared.events import ProcessorRoute
from shared.keys import Keys
from tests.control_plane.local_client import LocalTestClient
from tests.control_plane.test_processors import create_processor, processor_body

TS_MAIN = (
    "interface X {a: number}; async function main(fh: any, req: any): Promise<string> "
    "{ const x: X = {a: 1}; return String(x.a); }"
)


def published_code(redis_client: redis.Redis, keys: Keys, processor_id: str) -> str:
    packed = redis_client.hget(keys.processors, processor_id)
    assert isinstance(packed, bytes), f"no route published for processor {processor_id}"
    code = redis_client.get(keys.processor_code(ProcessorRoute.unpack(packed).code_hash))
    assert isinstance(code, bytes)
    return code.decode("utf-8")


def test_typescript_is_published_as_javascript_with_a_global_main(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    created = create_processor(client, language="ts", code=TS_MAIN)

    js = published_code(redis_client, keys, created["id"])
    assert created["code"] == TS_MAIN
    assert "interface" not in js
    assert ": X" not in js and "Promise<string>" not in js and ": any" not in js
    assert "async function main(fh, req)" in js
    check = ";\nif (typeof main !== 'function') throw 0;\nmain(null, null).then((v) => console.log(v));"
    ran = subprocess.run(["node", "-e", js + check], capture_output=True, text=True, timeout=30, check=True)
    assert ran.stdout == "1\n"


def test_javascript_is_published_as_esbuilds_output(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    created = create_processor(client, code="function main(request)   { return 'x' }  // done")

    assert published_code(redis_client, keys, created["id"]) == 'function main(request) {\n  return "x";\n}\n'


def test_a_javascript_syntax_error_is_400_with_line_and_column(client: LocalTestClient) -> None:
    code = "function main(request) {\n  let y = 1\n  let z = 3 x;\n}\n"

    response = client.post("/admin/processor", json=processor_body(code=code))

    assert response.status_code == 400
    assert response.json() == {
        "code": 400,
        "message": 'code does not compile: 3:13: Expected ";" but found "x"',
    }


def test_a_typescript_syntax_error_is_400_with_line_and_column(client: LocalTestClient) -> None:
    code = "async function main(fh: any, req: any) {\n  const a: = 1;\n}\n"

    response = client.post("/admin/processor", json=processor_body(language="typescript", code=code))

    assert response.status_code == 400
    assert response.json() == {"code": 400, "message": 'code does not compile: 2:12: Unexpected "="'}


def test_typescript_syntax_is_not_javascript(client: LocalTestClient) -> None:
    response = client.post("/admin/processor", json=processor_body(language="js", code=TS_MAIN))

    assert response.status_code == 400
    assert response.json()["message"] == 'code does not compile: 1:11: Expected ";" but found "X"'


def test_code_without_a_global_main_is_400(client: LocalTestClient) -> None:
    response = client.post("/admin/processor", json=processor_body(code="function handler(r) { return 1 }"))

    assert response.status_code == 400
    assert response.json()["message"] == (
        "code must define a global function main, e.g. `async function main(fh, request) { ... }`"
    )


def test_module_syntax_is_400(client: LocalTestClient) -> None:
    response = client.post(
        "/admin/processor", json=processor_body(code="export function main(r) { return 1 }")
    )

    assert response.status_code == 400
    assert response.json()["message"] == (
        "code must be a script, not an ES module: remove `export` and define a global `function main`"
    )


def test_a_refused_post_stores_and_publishes_nothing(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    response = client.post("/admin/processor", json=processor_body(code="function main( {"))

    assert response.status_code == 400
    assert client.get("/admin/processor").json() == []
    assert redis_client.hlen(keys.processors) == 0
    assert list(redis_client.scan_iter(keys.processor_code("*"))) == []


def test_a_refused_put_keeps_the_old_version_everywhere(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    created = create_processor(client)
    route_before = redis_client.hget(keys.processors, created["id"])
    code_keys_before = set(redis_client.scan_iter(keys.processor_code("*")))

    response = client.put(
        f"/admin/processor/{created['id']}",
        json=processor_body(name="broken", language="ts", code="function main(: number) {}"),
    )

    assert response.status_code == 400
    assert response.json()["message"].startswith("code does not compile: 1:15: ")
    assert client.get(f"/admin/processor/{created['id']}").json() == created
    assert redis_client.hget(keys.processors, created["id"]) == route_before
    assert set(redis_client.scan_iter(keys.processor_code("*"))) == code_keys_before


def test_without_esbuild_the_control_plane_starts_and_saving_is_503(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "no-esbuild"
    with (
        caplog.at_level(logging.WARNING, logger="ffaas.control_plane"),
        LocalTestClient(create_app(replace(settings, esbuild_path=missing))) as client,
    ):
        response = client.post("/admin/processor", json=processor_body())
        listed = client.get("/admin/processor")

    assert response.status_code == 503
    assert response.json() == {
        "code": 503,
        "message": f"cannot save processors: esbuild not found at {missing} (FFAAS_ESBUILD_PATH); "
        "run `make install`",
    }
    assert listed.json() == []
    assert f"saving processors will answer 503: esbuild not found at {missing}" in caplog.text
