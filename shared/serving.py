"""Serving a plane: logging set up once, uvicorn with uvloop + httptools.

uvloop + httptools served the same Starlette app at ~5x hypercorn's requests per
second on this machine (SPEC.md, "Dependencies").
"""

from __future__ import annotations

import logging

import uvicorn
from starlette.types import ASGIApp


def serve(app: ASGIApp, *, host: str, port: int, log_level: str) -> None:
    level = "DEBUG" if log_level == "trace" else log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        app, host=host, port=port, loop="uvloop", http="httptools", log_level=log_level, access_log=False
    )
