"""Running endpoints through the data plane's HTTP surface, in-process, with a real Redis."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace
from typing import Any

import pytest
from starlette.testclient import TestClient

import data_plane.app
from data_plane.app import create_app
from data_plane.settings import Settings
from tests.data_plane import guests
from tests.data_plane.component.conftest import Publisher
from tests.data_plane.stepped_runtime import SteppedRuntime


def wait_for(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_cgi_headers_status_and_body_become_the_response(publisher: Publisher, settings: Settings) -> None:
    wasm = guests.prints(b"Content-Type: text/plain\r\nX-Custom: yes\r\nStatus: 201 Created\r\n\r\nmade it")
    endpoint_id = publisher.deploy(wasm)
    with TestClient(create_app(settings)) as client:
        response = client.post(f"/{endpoint_id}", content=b"ignored")
    assert response.status_code == 201
    assert response.headers["x-custom"] == "yes"
    assert response.headers["content-type"] == "text/plain"
    assert response.text == "made it"


def test_output_without_header_block_is_the_body_with_200(publisher: Publisher, settings: Settings) -> None:
    endpoint_id = publisher.deploy(guests.prints(b"just text, no headers"))
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/{endpoint_id}")
    assert (response.status_code, response.text) == (200, "just text, no headers")


def test_location_alone_redirects(publisher: Publisher, settings: Settings) -> None:
    endpoint_id = publisher.deploy(guests.prints(b"Location: /elsewhere\n\n"))
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/{endpoint_id}", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (302, "/elsewhere")


def test_request_body_is_stdin_for_every_method(publisher: Publisher, settings: Settings) -> None:
    endpoint_id = publisher.deploy(guests.echo_stdin())
    with TestClient(create_app(settings)) as client:
        for method in ("POST", "PUT", "PATCH", "DELETE", "PROPFIND"):
            response = client.request(
                method, f"/{endpoint_id}/sub/path", content=f"body via {method}".encode()
            )
            assert response.text == f"body via {method}"


def test_cgi_variables_and_endpoint_env_reach_the_guest(publisher: Publisher, settings: Settings) -> None:
    endpoint_id = publisher.deploy(guests.prints_env("all"), env={"GREETING": "hello"})
    with TestClient(create_app(settings)) as client:
        response = client.put(
            f"/{endpoint_id}/a%20b/c?x=1&y=2",
            content=b"12345",
            headers={"X-Thing": "one", "Content-Type": "text/csv"},
        )
    env = dict(item.split("=", 1) for item in response.content.decode().split("\0") if "=" in item)
    assert env["GREETING"] == "hello"
    assert env["REQUEST_METHOD"] == "PUT"
    assert env["PATH_INFO"] == "/a b/c"
    assert env["X_RAW_PATH_INFO"] == "/a%20b/c"
    assert env["QUERY_STRING"] == "x=1&y=2"
    assert env["CONTENT_TYPE"] == "text/csv"
    assert env["CONTENT_LENGTH"] == "5"
    assert env["HTTP_X_THING"] == "one"
    assert env["SCRIPT_NAME"] == f"/{endpoint_id}"
    assert env["X_FULL_URL"].endswith(f"/{endpoint_id}/a%20b/c?x=1&y=2")
    assert env["SERVER_NAME"] and env["SERVER_PORT"]


def test_unknown_endpoint_is_404_json(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/{uuid.uuid4()}")
    assert response.status_code == 404
    assert set(response.json()) == {"code", "message"} and response.json()["code"] == 404


def test_trap_is_500_without_guest_internals(publisher: Publisher, settings: Settings) -> None:
    endpoint_id = publisher.deploy(guests.traps())
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/{endpoint_id}")
    assert response.status_code == 500
    assert response.json() == {
        "code": 500,
        "message": "the module trapped: wasm `unreachable` instruction executed",
    }


def test_nonzero_exit_is_500_naming_the_status(publisher: Publisher, settings: Settings) -> None:
    endpoint_id = publisher.deploy(guests.exits(7))
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/{endpoint_id}")
    assert response.status_code == 500
    assert "status 7" in response.json()["message"]


def test_infinite_loop_is_504_naming_the_setting(publisher: Publisher, settings: Settings) -> None:
    endpoint_id = publisher.deploy(guests.loops_forever())
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/{endpoint_id}")
    assert response.status_code == 504
    assert response.json()["message"] == "run exceeded 500 ms (FFAAS_RUN_TIMEOUT_MS)"


def test_memory_cap_is_500_naming_the_setting(publisher: Publisher, settings: Settings) -> None:
    endpoint_id = publisher.deploy(guests.grows_memory_until_refused())
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/{endpoint_id}")
    assert response.status_code == 500
    assert "FFAAS_MAX_MEMORY_BYTES" in response.json()["message"]


def test_module_needing_more_initial_memory_than_the_cap_is_500(
    publisher: Publisher, settings: Settings
) -> None:
    endpoint_id = publisher.deploy(guests.module("", memory_pages=1024))
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/{endpoint_id}")
    assert response.status_code == 500
    assert response.json()["message"] == (
        "the deployed module cannot run on this data plane: memory has a minimum byte size of 67108864 "
        "which exceeds the limit of 0x400000 bytes (FFAAS_MAX_MEMORY_BYTES)"
    )


def test_stdout_flood_is_500_naming_the_setting(publisher: Publisher, settings: Settings) -> None:
    endpoint_id = publisher.deploy(guests.floods_stdout())
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/{endpoint_id}")
    assert response.status_code == 500
    assert "FFAAS_MAX_RESPONSE_BYTES" in response.json()["message"]


def test_oversized_request_body_is_413(publisher: Publisher, settings: Settings) -> None:
    endpoint_id = publisher.deploy(guests.echo_stdin())
    with TestClient(create_app(settings)) as client:
        declared = client.post(f"/{endpoint_id}", content=b"x" * 100_001)
        streamed = client.post(f"/{endpoint_id}", content=iter([b"x" * 60_000, b"x" * 60_000]))
    for response in (declared, streamed):
        assert response.status_code == 413
        assert (
            response.json()["message"]
            == "request body exceeds the limit of 100000 bytes (FFAAS_MAX_REQUEST_BYTES)"
        )


def test_invalid_status_header_is_500(publisher: Publisher, settings: Settings) -> None:
    endpoint_id = publisher.deploy(guests.prints(b"Status: banana\n\nbody"))
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/{endpoint_id}")
    assert response.status_code == 500
    assert "Status header" in response.json()["message"]


def test_new_deploy_is_served_after_its_event(publisher: Publisher, settings: Settings) -> None:
    endpoint_id = publisher.deploy(guests.prints(b"v1"))
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/{endpoint_id}").text == "v1"
        publisher.deploy(guests.prints(b"v2"), endpoint_id=endpoint_id)
        wait_for(lambda: client.get(f"/{endpoint_id}").text == "v2")


def test_deleted_endpoint_is_acknowledged_and_then_404(publisher: Publisher, settings: Settings) -> None:
    endpoint_id = publisher.deploy(guests.prints(b"here"))
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/{endpoint_id}").status_code == 200
        event_id = publisher.delete(endpoint_id)
        wait_for(lambda: publisher.client.lrange(publisher.keys.acks(event_id), 0, -1) == [b"test-plane"])
        assert client.get(f"/{endpoint_id}").status_code == 404


def test_restart_loads_modules_from_disk_instead_of_compiling(
    publisher: Publisher, settings: Settings
) -> None:
    endpoint_id = publisher.deploy(guests.prints(b"cached"))
    with TestClient(create_app(settings)) as client:
        assert client.get("/status").json()["modules_compiled"] == 1
    with TestClient(create_app(settings)) as client:
        status = client.get("/status").json()
        assert (status["modules_compiled"], status["modules_loaded_from_disk"]) == (0, 1)
        assert client.get(f"/{endpoint_id}").text == "cached"


def test_corrupted_disk_artifact_is_discarded_and_recompiled(
    publisher: Publisher, settings: Settings
) -> None:
    endpoint_id = publisher.deploy(guests.prints(b"still works"))
    with TestClient(create_app(settings)):
        pass
    for artifact in settings.module_cache_dir.rglob("*.cwasm"):
        artifact.write_bytes(b"not an artifact")
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/{endpoint_id}").text == "still works"
        assert client.get("/status").json()["modules_compiled"] == 1


LONG_TIMEOUT_MS = 60_000
"""A limit the looping runs never reach by themselves: the test ends them (`expire_runs`)."""


def test_a_looping_endpoint_does_not_block_others(
    publisher: Publisher, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtimes: list[SteppedRuntime] = []

    def stepped_runtime(**kwargs: Any) -> SteppedRuntime:
        runtimes.append(SteppedRuntime(ticking=True, **kwargs))
        return runtimes[-1]

    monkeypatch.setattr(data_plane.app, "WasmRuntime", stepped_runtime)
    looping = publisher.deploy(guests.loops_forever())
    fast = publisher.deploy(guests.prints(b"fast"))
    statuses: list[int] = []
    with TestClient(create_app(replace(settings, run_timeout_ms=LONG_TIMEOUT_MS))) as client:
        (runtime,) = runtimes
        slow_calls = [
            threading.Thread(target=lambda: statuses.append(client.get(f"/{looping}").status_code))
            for _ in range(3)
        ]
        for call in slow_calls:
            call.start()
        runtime.wait_for_runs(3, LONG_TIMEOUT_MS)  # three run threads are now held by the loops

        answers = [client.get(f"/{fast}").text for _ in range(10)]

        assert runtime.runs_in_progress(LONG_TIMEOUT_MS) == 3 and statuses == [], "loops ended early"
        runtime.expire_runs(LONG_TIMEOUT_MS)
        for call in slow_calls:
            call.join(10)
    assert answers == ["fast"] * 10, "fast calls were not served while the loops held their threads"
    assert statuses == [504, 504, 504]
