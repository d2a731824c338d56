"""The data plane in-process against a real Redis, with routes published the way the control plane does."""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from data_plane.app import create_app
from data_plane.settings import Settings
from shared.content_hash import content_hash
from shared.events import EndpointRoute, ProcessorRoute, RouteEvent
from shared.keys import Keys


class Publisher:
    """Publishes routes exactly as the control plane's publisher does (module bytes, route, event)."""

    def __init__(self, redis_url: str, keys: Keys) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.keys = keys

    def deploy(
        self, wasm: bytes, *, endpoint_id: str | None = None, env: dict[str, str] | None = None
    ) -> str:
        endpoint_id = endpoint_id or str(uuid.uuid4())
        module_hash = content_hash(wasm)
        self.client.set(self.keys.module(module_hash), wasm)
        route = EndpointRoute(endpoint_id, str(uuid.uuid4()), module_hash, env or {})
        self.client.hset(self.keys.routes, endpoint_id, route.pack())
        self.client.publish(self.keys.events, RouteEvent(uuid.uuid4().hex, endpoint_id).pack())
        return endpoint_id

    def processor(self, js: str, *, processor_id: str | None = None, runtime: str = "v8") -> str:
        """Publish runnable JavaScript as the control plane does after transpiling it."""
        processor_id = processor_id or str(uuid.uuid4())
        code_hash = content_hash(js.encode())
        self.client.set(self.keys.processor_code(code_hash), js.encode())
        route = ProcessorRoute(processor_id, "test processor", "js", runtime, code_hash)
        self.client.hset(self.keys.processors, processor_id, route.pack())
        self.client.publish(self.keys.events, RouteEvent(uuid.uuid4().hex, processor_id=processor_id).pack())
        return processor_id

    def delete(self, endpoint_id: str) -> str:
        event_id = uuid.uuid4().hex
        self.client.hdel(self.keys.routes, endpoint_id)
        self.client.publish(self.keys.events, RouteEvent(event_id, endpoint_id).pack())
        return event_id


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, key_prefix: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        redis_prefix=key_prefix,
        data_dir=tmp_path,
        plane_id="test-plane",
        run_timeout_ms=500,
        max_memory_bytes=4 << 20,
        max_request_bytes=100_000,
        max_response_bytes=100_000,
        max_log_bytes=1000,
        run_concurrency=8,
    )


@pytest.fixture
def publisher(redis_url: str, key_prefix: str) -> Iterator[Publisher]:
    publisher = Publisher(redis_url, Keys(key_prefix))
    yield publisher
    publisher.client.close()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


class Recorded:
    """Requests a `TargetServer` received: (method, path, headers lower-cased, body)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []


class TargetServer:
    """A real HTTP server on 127.0.0.1 for outbound requests: answers JSON describing each request."""

    def __init__(self) -> None:
        recorded = self.recorded = Recorded()

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                recorded.requests.append((self.command, self.path, headers, body))
                answer = json.dumps(
                    {"method": self.command, "path": self.path, "body": body.decode()}
                ).encode()
                self.send_response(201 if self.path.startswith("/created") else 200)
                self.send_header("content-type", "application/json")
                self.send_header("x-target", "yes")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target() -> Iterator[TargetServer]:
    server = TargetServer()
    yield server
    server.close()
