"""Garbage collection of module bytes and processor code, in SQLite and Redis: what nothing refers
to any more goes; what any deploy of any endpoint's history, or any version of a processor, refers
to stays (rollback and replay need it)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import redis

from control_plane.app import create_app
from control_plane.settings import Settings
from shared.content_hash import content_hash
from shared.keys import Keys
from tests.control_plane import wasm_modules
from tests.control_plane.conftest import create_endpoint, deploy
from tests.control_plane.local_client import LocalTestClient
from tests.control_plane.test_processors import create_processor, processor_body

FIRST = "function main(request) {\n  return 1;\n}\n"
SECOND = "function main(request) {\n  return 2;\n}\n"
THIRD = "function main(request) {\n  return 3;\n}\n"


def stored_modules(settings: Settings) -> set[str]:
    with sqlite3.connect(settings.database_path) as connection:
        return {row[0] for row in connection.execute("SELECT hash FROM modules")}


def stored_code(settings: Settings) -> set[str]:
    with sqlite3.connect(settings.database_path) as connection:
        return {row[0] for row in connection.execute("SELECT code_hash FROM processor_code")}


def in_redis(redis_client: redis.Redis, key_of: Callable[[str], str], hashes: list[str]) -> list[bool]:
    return [bool(redis_client.exists(key_of(value))) for value in hashes]


def test_deleting_endpoints_deletes_the_module_bytes_no_deploy_refers_to(
    client: LocalTestClient, settings: Settings, redis_client: redis.Redis, keys: Keys
) -> None:
    only_a, shared = wasm_modules.command_module(1), wasm_modules.command_module(2)
    hashes = [content_hash(only_a), content_hash(shared)]
    a, b = create_endpoint(client, "a")["id"], create_endpoint(client, "b")["id"]
    deploy(client, a, only_a)
    deploy(client, a, shared)
    deploy(client, b, shared)

    assert client.delete(f"/endpoint/{a}").status_code == 204
    assert stored_modules(settings) == {hashes[1]}
    assert in_redis(redis_client, keys.module, hashes) == [False, True]

    assert client.delete(f"/endpoint/{b}").status_code == 204
    assert stored_modules(settings) == set()
    assert in_redis(redis_client, keys.module, hashes) == [False, False]


def test_module_bytes_of_any_deploy_in_a_history_stay_for_rollback(
    client: LocalTestClient, settings: Settings, redis_client: redis.Redis, keys: Keys
) -> None:
    old, new = wasm_modules.command_module(3), wasm_modules.command_module(4)
    kept = create_endpoint(client, "kept")["id"]
    deploy(client, kept, old)
    deploy(client, kept, new)
    gone = create_endpoint(client, "gone")["id"]
    deploy(client, gone, wasm_modules.command_module(5))
    assert client.delete(f"/endpoint/{gone}").status_code == 204  # a collection runs

    assert stored_modules(settings) == {content_hash(old), content_hash(new)}
    assert in_redis(redis_client, keys.module, [content_hash(old), content_hash(new)]) == [True, True]
    rolled_back = client.post(f"/endpoint/{kept}/rollback")
    assert rolled_back.status_code == 200, rolled_back.text


def test_deleting_processors_deletes_the_code_no_processor_or_version_refers_to(
    client: LocalTestClient, settings: Settings, redis_client: redis.Redis, keys: Keys
) -> None:
    first, second, third = (content_hash(code.encode()) for code in (FIRST, SECOND, THIRD))
    p = create_processor(client, name="p", code=FIRST)["id"]
    q = create_processor(client, name="q", code=FIRST)["id"]
    assert client.put(f"/admin/processor/{p}", json=processor_body(name="p", code=SECOND)).status_code == 200
    assert client.put(f"/admin/processor/{q}", json=processor_body(name="q", code=THIRD)).status_code == 200
    assert stored_code(settings) == {first, second, third}  # versions keep what a rollback needs

    assert client.delete(f"/admin/processor/{p}").status_code == 204  # p's versions go with it
    assert stored_code(settings) == {first, third}  # q's first version still runs FIRST
    assert in_redis(redis_client, keys.processor_code, [first, second, third]) == [True, False, True]

    assert client.delete(f"/admin/processor/{q}").status_code == 204
    assert stored_code(settings) == set()
    assert in_redis(redis_client, keys.processor_code, [first, third]) == [False, False]


def test_start_up_sweeps_bytes_in_redis_that_sqlite_does_not_refer_to(
    settings: Settings, redis_client: redis.Redis, keys: Keys
) -> None:
    with LocalTestClient(create_app(settings)) as client:
        endpoint_id = create_endpoint(client)["id"]
        module = wasm_modules.command_module(6)
        deploy(client, endpoint_id, module)
        create_processor(client, code=FIRST)
    stray_module, stray_code = "f" * 32, "e" * 32
    redis_client.set(keys.module(stray_module), b"left over")
    redis_client.set(keys.processor_code(stray_code), b"left over")

    with LocalTestClient(create_app(settings)):
        pass

    assert in_redis(redis_client, keys.module, [stray_module, content_hash(module)]) == [False, True]
    assert in_redis(redis_client, keys.processor_code, [stray_code, content_hash(FIRST.encode())]) == [
        False,
        True,
    ]
