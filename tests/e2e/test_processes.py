"""The suite's own process helpers: a port taken between `free_port()` and the bind is survived.

`free_port()` can only name a port that was free a moment ago. These tests take the port
first, on purpose, and check that redis-server and a plane start anyway, on another port,
and that a stranger answering on the port is never mistaken for them.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import RedisServer
from tests.e2e.processes import Plane


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other process holds (a listening socket that never answers)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


@pytest.fixture
def stranger_port() -> Iterator[int]:
    """A port held by an HTTP server that answers every GET /status with 200, like a plane would."""

    class Stranger(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"status": "ok", "service": "someone else"}'
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stranger)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_redis_server_moves_off_a_taken_port_and_keeps_the_new_one(tmp_path: Path, taken_port: int) -> None:
    server = RedisServer(tmp_path)
    server.port = taken_port  # as if another process took it after free_port() named it
    server.start()
    try:
        moved_to = server.port
        assert moved_to != taken_port
        with redis.Redis.from_url(server.url) as client:
            assert client.set("k", "v")
        server.stop()
        server.start()  # a restart keeps the port its clients know
        assert server.port == moved_to
        with redis.Redis.from_url(server.url) as client:
            assert client.get("k") == b"v"
    finally:
        server.stop()


def plane_on(port: int, tmp_path: Path, redis_server: RedisServer) -> Plane:
    return Plane(
        "control_plane",
        port=port,
        settings={
            "FFAAS_REDIS_URL": redis_server.url,
            "FFAAS_REDIS_PREFIX": "processes-test",
            "FFAAS_DATA_DIR": str(tmp_path / "control-plane"),
        },
        log_path=tmp_path / "control-plane.log",
    )


def test_a_plane_whose_port_is_taken_starts_on_another(
    tmp_path: Path, redis_server: RedisServer, taken_port: int
) -> None:
    plane = plane_on(taken_port, tmp_path, redis_server)
    plane.start()
    try:
        assert plane.port != taken_port
        assert plane.settings["FFAAS_CONTROL_PLANE_PORT"] == str(plane.port)
        assert httpx.get(f"{plane.url}/status").json()["service"] == "control-plane"
        assert "address already in use" in plane.log_path.read_text()
    finally:
        plane.stop()


def test_a_stranger_answering_on_the_port_is_not_taken_for_the_plane(
    tmp_path: Path, redis_server: RedisServer, stranger_port: int
) -> None:
    plane = plane_on(stranger_port, tmp_path, redis_server)
    plane.start()
    try:
        assert plane.port != stranger_port
        assert httpx.get(f"{plane.url}/status").json()["service"] == "control-plane"
    finally:
        plane.stop()
