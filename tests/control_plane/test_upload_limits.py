"""FFAAS_MAX_MODULE_BYTES: refused from Content-Length, or while streaming, storing nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import httpx
import redis

from control_plane.app import create_app
from control_plane.settings import Settings
from shared.keys import Keys
from tests.control_plane import wasm_modules
from tests.control_plane.conftest import assert_nothing_stored, create_endpoint, deploy
from tests.control_plane.local_client import LocalTestClient

LIMIT = 1000


def test_deploy_over_the_limit_by_content_length_is_413_naming_limit_and_setting(
    settings: Settings, redis_client: redis.Redis, keys: Keys
) -> None:
    module = wasm_modules.command_module(7) + b"\0" * LIMIT
    with LocalTestClient(create_app(replace(settings, max_module_bytes=LIMIT))) as client:
        endpoint = create_endpoint(client)
        good = deploy(client, endpoint["id"], wasm_modules.command_module())

        response = client.post(f"/endpoint/{endpoint['id']}/deploy", content=module)

        assert response.request.headers["content-length"] == str(len(module))
        assert response.status_code == 413
        assert response.json() == {
            "code": 413,
            "message": f"module is larger than {LIMIT} bytes (FFAAS_MAX_MODULE_BYTES)",
        }
        assert_nothing_stored(client, redis_client, keys, endpoint["id"], good, module)


def test_deploy_over_the_limit_sent_chunked_is_413(
    settings: Settings, redis_client: redis.Redis, keys: Keys
) -> None:
    module = wasm_modules.command_module(7) + b"\0" * LIMIT

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(module), 100):
            yield module[start : start + 100]

    with LocalTestClient(create_app(replace(settings, max_module_bytes=LIMIT))) as client:
        endpoint = create_endpoint(client)
        good = deploy(client, endpoint["id"], wasm_modules.command_module())

        response = client.post(f"/endpoint/{endpoint['id']}/deploy", content=chunks())

        assert "content-length" not in response.request.headers
        assert response.status_code == 413
        assert response.json()["message"] == f"module is larger than {LIMIT} bytes (FFAAS_MAX_MODULE_BYTES)"
        assert_nothing_stored(client, redis_client, keys, endpoint["id"], good, module)


def test_module_exactly_at_the_limit_is_accepted(settings: Settings) -> None:
    module = wasm_modules.command_module()
    with LocalTestClient(create_app(replace(settings, max_module_bytes=len(module)))) as client:
        endpoint = create_endpoint(client)

        response = client.post(f"/endpoint/{endpoint['id']}/deploy", content=module)

        assert response.status_code == 201


async def test_an_oversized_stream_is_not_read_past_the_limit(settings: Settings) -> None:
    app = create_app(replace(settings, max_module_bytes=LIMIT))
    sent = 0

    async def endless_body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(10_000):
            sent += 100
            yield b"\0" * 100

    # httpx's ASGITransport hands the app one chunk each time it calls `receive`, so
    # `sent` counts what the app actually pulled.
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            endpoint = (await client.post("/endpoint", json={"name": "streamed"})).json()
            response = await client.post(f"/endpoint/{endpoint['id']}/deploy", content=endless_body())

    assert response.status_code == 413
    assert LIMIT < sent <= LIMIT + 100
