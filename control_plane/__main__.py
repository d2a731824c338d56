"""`python -m control_plane`: settings from the environment, then serve `create_app(settings)`."""

from __future__ import annotations

import logging
import os
import sys

import uvicorn

from control_plane.app import create_app
from control_plane.settings import Settings
from shared.settings import SettingError


def main() -> None:
    try:
        settings = Settings.from_environ(os.environ)
    except SettingError as exc:
        print(f"control plane: {exc}", file=sys.stderr)
        sys.exit(2)
    level = "DEBUG" if settings.log_level == "trace" else settings.log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    main()
