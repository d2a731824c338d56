"""`python -m data_plane`: settings from the environment, then `FFAAS_DATA_PLANE_WORKERS` worker
processes on one port under a supervisor (`data_plane.workers`); exits with its status."""

from __future__ import annotations

import os
import sys

from data_plane.settings import Settings
from data_plane.workers import Supervisor
from shared.serving import configure_logging
from shared.settings import SettingError


def main() -> None:
    try:
        settings = Settings.from_environ(os.environ)
    except SettingError as exc:
        print(f"data plane: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level)
    sys.exit(Supervisor(settings, os.environ).run())


if __name__ == "__main__":
    main()
