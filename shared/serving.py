"""Serving a plane: logging set up once, uvicorn with uvloop + httptools.

uvloop + httptools served the same Starlette app at ~5x hypercorn's requests per
second on this machine (SPEC.md, "Dependencies").
"""

from __future__ import annotations

import logging

import uvicorn
from starlette.types import ASGIApp


def configure_logging(log_level: str) -> None:
    """Our log format at `log_level` (`trace` is uvicorn's; ours log at DEBUG then). Idempotent."""
    level = "DEBUG" if log_level == "trace" else log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def serve(app: ASGIApp, *, host: str, port: int, log_level: str) -> None:
    """Serve `app` until SIGINT/SIGTERM.  No access log: request lines are not worth their cost, and
    uvicorn's `trace` level replaces header values (the admin token among them) with `<...>`."""
    configure_logging(log_level)
    uvicorn.run(
        app, host=host, port=port, loop="uvloop", http="httptools", log_level=log_level, access_log=False
    )
