"""Every refusal, with its status and the JSON error body {"code", "message"} naming what is wrong.

One cluster with small limits serves the whole module: bad uploads to the control
plane, guests that trap, exit non-zero, loop, grow memory or flood stdout on the
data plane, and callers without the admin token. After each refusal the planes
keep serving.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import wasmtime

from tests.conftest import RedisServer
from tests.data_plane import guests
from tests.e2e.cluster import Cluster, assert_error
from tests.e2e.conftest import running_cluster

MAX_MODULE_BYTES = 8192
MAX_REQUEST_BYTES = 1024
MAX_MEMORY_BYTES = 16 << 20
MAX_RESPONSE_BYTES = 65536
RUN_TIMEOUT_MS = 1000
LIMITS = {
    "FFAAS_MAX_MODULE_BYTES": str(MAX_MODULE_BYTES),
    "FFAAS_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES),
    "FFAAS_MAX_MEMORY_BYTES": str(MAX_MEMORY_BYTES),
    "FFAAS_MAX_RESPONSE_BYTES": str(MAX_RESPONSE_BYTES),
    "FFAAS_RUN_TIMEOUT_MS": str(RUN_TIMEOUT_MS),
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("refusals"), redis_server, settings=LIMITS) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def hello_id(cluster: Cluster, hello_wasm: bytes) -> str:
    return cluster.new_deployed_endpoint("hello", hello_wasm)


def call(cluster: Cluster, endpoint_id: str, **kwargs: Any) -> httpx.Response:
    return cluster.call(cluster.data_planes[0], endpoint_id, **kwargs)


def assert_hello(response: httpx.Response) -> None:
    assert (response.status_code, response.text) == (200, "Hello, world!\n"), response.text


def assert_nothing_deployed(cluster: Cluster, endpoint_id: str) -> None:
    endpoint = cluster.get_endpoint(endpoint_id).json()
    assert endpoint["deploy_history"] == [], endpoint
    assert endpoint["active_deploy_id"] == "00000000-0000-0000-0000-000000000000", endpoint
    assert_error(call(cluster, endpoint_id), 404)


# -- the control plane refuses bad uploads, and stores nothing ----------------------------------------


def test_deploy_of_bytes_that_are_not_wasm_is_400(cluster: Cluster) -> None:
    endpoint_id = cluster.create_endpoint("not wasm")["id"]

    response = cluster.post_module(endpoint_id, b"#!/bin/sh\necho this is not a module\n")

    assert_error(response, 400, "not a WebAssembly module")
    assert_nothing_deployed(cluster, endpoint_id)


def test_deploy_of_truncated_wasm_is_400(cluster: Cluster) -> None:
    endpoint_id = cluster.create_endpoint("truncated")["id"]
    wasm = bytes(guests.prints(b"hi"))

    response = cluster.post_module(endpoint_id, wasm[: len(wasm) // 2])

    assert_error(response, 400, "invalid WebAssembly module")
    assert_nothing_deployed(cluster, endpoint_id)


def test_deploy_of_wasm_without_start_is_400_naming_start(cluster: Cluster) -> None:
    endpoint_id = cluster.create_endpoint("no _start")["id"]
    library = wasmtime.wat2wasm('(module (memory (export "memory") 1) (func (export "run")))')

    response = cluster.post_module(endpoint_id, bytes(library))

    assert_error(response, 400, "_start")
    assert_nothing_deployed(cluster, endpoint_id)


def test_deploy_of_an_empty_body_is_400(cluster: Cluster) -> None:
    endpoint_id = cluster.create_endpoint("empty")["id"]

    assert_error(cluster.post_module(endpoint_id, b""), 400, "empty")
    assert_nothing_deployed(cluster, endpoint_id)


def test_deploy_over_max_module_bytes_is_413_naming_the_setting(cluster: Cluster) -> None:
    endpoint_id = cluster.create_endpoint("too big")["id"]
    big = bytes(guests.prints(b"x" * MAX_MODULE_BYTES))
    assert len(big) > MAX_MODULE_BYTES

    assert_error(cluster.post_module(endpoint_id, big), 413, "FFAAS_MAX_MODULE_BYTES", str(MAX_MODULE_BYTES))
    # Without a Content-Length (chunked), the limit holds while streaming.
    chunked = cluster.admin.post(
        f"{cluster.admin_url}/endpoint/{endpoint_id}/deploy",
        content=iter([big[:4096], big[4096:]]),
        headers={"content-type": "application/octet-stream"},
    )
    assert_error(chunked, 413, "FFAAS_MAX_MODULE_BYTES")
    assert_nothing_deployed(cluster, endpoint_id)


def test_deploy_just_under_max_module_bytes_is_accepted(cluster: Cluster) -> None:
    endpoint_id = cluster.create_endpoint("fits")["id"]
    wasm = bytes(guests.prints(b"y" * (MAX_MODULE_BYTES - 400)))
    assert len(wasm) <= MAX_MODULE_BYTES

    cluster.deploy(endpoint_id, wasm)

    assert call(cluster, endpoint_id).text == "y" * (MAX_MODULE_BYTES - 400)


def test_deploy_to_an_unknown_endpoint_is_404(cluster: Cluster, hello_wasm: bytes) -> None:
    unknown = str(uuid.uuid4())
    assert_error(cluster.post_module(unknown, hello_wasm), 404, unknown)
    assert_error(cluster.get_endpoint(unknown), 404, unknown)


# -- the data plane refuses bad calls and misbehaving guests ------------------------------------------


def test_request_body_over_max_request_bytes_is_413_naming_the_setting(cluster: Cluster) -> None:
    endpoint_id = cluster.new_deployed_endpoint("stdin echo", guests.echo_stdin())

    fits = call(cluster, endpoint_id, method="POST", content=b"a" * MAX_REQUEST_BYTES)
    too_big = call(cluster, endpoint_id, method="POST", content=b"a" * (MAX_REQUEST_BYTES + 1))
    chunked = call(cluster, endpoint_id, method="POST", content=iter([b"b" * 1000, b"b" * 1000]))

    assert (fits.status_code, fits.content) == (200, b"a" * MAX_REQUEST_BYTES)
    assert_error(too_big, 413, "FFAAS_MAX_REQUEST_BYTES", str(MAX_REQUEST_BYTES))
    assert_error(chunked, 413, "FFAAS_MAX_REQUEST_BYTES")


def test_trap_is_500_without_guest_internals(cluster: Cluster, hello_id: str) -> None:
    endpoint_id = cluster.new_deployed_endpoint("traps", guests.traps())

    message = assert_error(call(cluster, endpoint_id), 500, "trap")

    assert "unreachable" in message
    assert "backtrace" not in message and "\n" not in message, message
    assert_hello(call(cluster, hello_id))


def test_non_zero_exit_is_500_naming_the_status(cluster: Cluster, hello_id: str) -> None:
    endpoint_id = cluster.new_deployed_endpoint("exits 3", guests.exits(3))

    assert_error(call(cluster, endpoint_id), 500, "exited with status 3")
    assert_hello(call(cluster, hello_id))


def test_memory_growth_past_the_limit_is_500_naming_the_setting(cluster: Cluster, hello_id: str) -> None:
    endpoint_id = cluster.new_deployed_endpoint("grows", guests.grows_memory_until_refused())

    assert_error(call(cluster, endpoint_id), 500, "FFAAS_MAX_MEMORY_BYTES")
    assert_hello(call(cluster, hello_id))


def test_stdout_flood_is_500_naming_the_setting(cluster: Cluster, hello_id: str) -> None:
    endpoint_id = cluster.new_deployed_endpoint("floods", guests.floods_stdout())

    assert_error(call(cluster, endpoint_id), 500, "FFAAS_MAX_RESPONSE_BYTES", str(MAX_RESPONSE_BYTES))
    assert_hello(call(cluster, hello_id))


def test_unknown_endpoint_is_404_on_the_data_plane(cluster: Cluster) -> None:
    unknown = str(uuid.uuid4())
    assert_error(call(cluster, unknown), 404, unknown)
    assert_error(call(cluster, unknown, sub_path="/deeper/path", method="POST"), 404, unknown)


def test_endpoint_without_deploy_is_404_on_the_data_plane(cluster: Cluster) -> None:
    endpoint_id = cluster.create_endpoint("never deployed")["id"]
    assert_error(call(cluster, endpoint_id), 404, endpoint_id)


# -- admin authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/endpoint"),
        ("GET", "/endpoint"),
        ("GET", "/endpoint/{id}"),
        ("POST", "/endpoint/{id}/deploy"),
        ("PUT", "/endpoint/{id}/env"),
        ("POST", "/endpoint/{id}/rollback"),
        ("DELETE", "/endpoint/{id}"),
    ],
)
def test_admin_routes_without_the_right_token_are_401(
    cluster: Cluster, hello_id: str, hello_wasm: bytes, method: str, path: str
) -> None:
    url = cluster.admin_url + path.format(id=hello_id)
    body = hello_wasm if path.endswith("/deploy") else b'{"name": "intruder", "GREETING": "x"}'
    before = cluster.admin.get(f"{cluster.admin_url}/endpoint").json()

    missing = cluster.http.request(method, url, content=body)
    wrong = cluster.http.request(
        method, url, content=body, headers={"authorization": f"Bearer {cluster.admin_token}x"}
    )
    not_bearer = cluster.http.request(
        method, url, content=body, headers={"authorization": cluster.admin_token}
    )

    assert_error(missing, 401, "Authorization")
    assert_error(wrong, 401, "FFAAS_ADMIN_TOKEN")
    assert_error(not_bearer, 401)
    assert cluster.admin.get(f"{cluster.admin_url}/endpoint").json() == before, "a refused call changed state"
    assert_hello(call(cluster, hello_id))


def test_status_answers_without_the_admin_token(cluster: Cluster) -> None:
    response = cluster.http.get(f"{cluster.admin_url}/status")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"
    data_plane = cluster.http.get(f"{cluster.data_planes[0].url}/status")
    assert data_plane.status_code == 200
    assert data_plane.json()["status"] == "ok"


# -- the time limit --------------------------------------------------------------------------------


def test_infinite_loop_is_504_naming_the_setting(cluster: Cluster, hello_id: str) -> None:
    endpoint_id = cluster.new_deployed_endpoint("loops", guests.loops_forever())

    assert_error(call(cluster, endpoint_id), 504, "FFAAS_RUN_TIMEOUT_MS", str(RUN_TIMEOUT_MS))
    assert_hello(call(cluster, hello_id))


def test_looping_calls_do_not_stop_other_endpoints_being_served(cluster: Cluster, hello_id: str) -> None:
    loop_id = cluster.new_deployed_endpoint("loops too", guests.loops_forever())
    loops = 3
    loop_answers: list[httpx.Response] = []
    a_loop_answered = threading.Event()

    def loop_call() -> None:
        with httpx.Client(timeout=30.0) as client:
            loop_answers.append(client.get(f"{cluster.data_planes[0].url}/{loop_id}"))
            a_loop_answered.set()

    threads = [threading.Thread(target=loop_call) for _ in range(loops)]
    for thread in threads:
        thread.start()
    # Hello calls for as long as the loops run: until the first loop answers (at its time limit).
    hello_answers = []
    while not a_loop_answered.is_set():
        hello_answers.append(call(cluster, hello_id))
        assert len(hello_answers) < 100_000, "the looping runs never ended"
    for thread in threads:
        thread.join(timeout=30)

    assert all(not thread.is_alive() for thread in threads)
    for response in hello_answers:
        assert_hello(response)
    for response in loop_answers:
        assert_error(response, 504, "FFAAS_RUN_TIMEOUT_MS")
    # The data plane's own record of when each run began and ended: some hello runs began after
    # the last looping run had begun and ended before the first one ended, i.e. while all loops ran.
    looping = [cluster.conversation(response) for response in loop_answers]
    all_looping_from = max(conversation["created_at"] for conversation in looping)
    all_looping_until = min(conversation["finished_at"] for conversation in looping)
    hellos = [cluster.conversation(response) for response in hello_answers]
    served_meanwhile = [
        hello
        for hello in hellos
        if hello["created_at"] > all_looping_from and hello["finished_at"] < all_looping_until
    ]
    assert served_meanwhile, (
        f"no hello run while all {loops} loops ran ({all_looping_from} .. {all_looping_until}); "
        f"{len(hellos)} hellos from {hellos[0]['created_at']} to {hellos[-1]['finished_at']}"
    )
    # Afterwards the plane still serves, and still enforces the limit.
    assert_hello(call(cluster, hello_id))
    assert_error(call(cluster, loop_id), 504, "FFAAS_RUN_TIMEOUT_MS")
