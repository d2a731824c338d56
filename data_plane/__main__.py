"""`python -m data_plane`: read the settings from the environment and serve."""

from __future__ import annotations

import logging
import os
import sys

import uvicorn

from data_plane.app import create_app
from data_plane.settings import Settings
from shared.settings import SettingError


def main() -> None:
    try:
        settings = Settings.from_environ(os.environ)
    except SettingError as exc:
        print(f"data plane: {exc}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level,
        access_log=False,
    )


if __name__ == "__main__":
    main()
