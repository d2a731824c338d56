"""`python -m data_plane`: settings from the environment, then serve `create_app(settings)`."""

from __future__ import annotations

import os
import sys

from data_plane.app import create_app
from data_plane.settings import Settings
from shared.serving import serve
from shared.settings import SettingError


def main() -> None:
    try:
        settings = Settings.from_environ(os.environ)
    except SettingError as exc:
        print(f"data plane: {exc}", file=sys.stderr)
        sys.exit(2)
    serve(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)


if __name__ == "__main__":
    main()
