"""Serving a plane: logging set up once, uvicorn with uvloop + httptools.

uvloop + httptools served the same Starlette app at ~5x hypercorn's requests per
second on this machine (SPEC.md, "Dependencies").

`serve` binds host:port itself (the control plane). `serve_socket` serves on a
socket bound by the caller (each data-plane worker binds its own, with
`SO_REUSEPORT`, see `bind_socket`) and reports when it is ready to answer.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from starlette.types import ASGIApp

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
STARTUP_FAILURE = 3
"""Exit status of a process whose app did not start (uvicorn's own)."""


def configure_logging(log_level: str) -> None:
    """Our log format at `log_level` (`trace` is uvicorn's; ours log at DEBUG then). Idempotent."""
    level = "DEBUG" if log_level == "trace" else log_level.upper()
    logging.basicConfig(level=level, format=LOG_FORMAT)


def serve(app: ASGIApp, *, host: str, port: int, log_level: str) -> None:
    """Serve `app` until SIGINT/SIGTERM.  No access log: request lines are not worth their cost, and
    uvicorn's `trace` level replaces header values (the admin token among them) with `<...>`."""
    configure_logging(log_level)
    uvicorn.run(
        app, host=host, port=port, loop="uvloop", http="httptools", log_level=log_level, access_log=False
    )


def bind_socket(
    host: str, port: int, *, reuse_address: bool = True, reuse_port: bool = False
) -> socket.socket:
    """A TCP socket bound to host:port, not listening yet (the server listens once its app started).

    `reuse_port` (SO_REUSEPORT): several sockets of this user may bind the same port, and the
    kernel spreads incoming connections over those listening. Raises OSError as bind does.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def serve_socket(app: ASGIApp, sock: socket.socket, *, log_level: str, on_ready: Callable[[], None]) -> None:
    """Serve `app` on `sock` until SIGTERM/SIGINT (drained as uvicorn does); `on_ready` runs once
    the app's startup finished and the socket listens. Exits with STARTUP_FAILURE if it never did."""
    config = uvicorn.Config(app, loop="uvloop", http="httptools", log_level=log_level, access_log=False)
    server = _ReportingServer(config, on_ready)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class _ReportingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            self._on_ready()
