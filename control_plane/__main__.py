"""`python -m control_plane`: settings from the environment, then serve `create_app(settings)`.

A malformed setting, or an admin API on a non-loopback address without a token
(see `Settings`), stops it here with status 2 and the reason on stderr.
"""

from __future__ import annotations

import logging
import os
import sys

from control_plane.app import create_app
from control_plane.settings import Settings
from shared.serving import configure_logging, serve
from shared.settings import SettingError

log = logging.getLogger("ffaas.control_plane")


def main() -> None:
    try:
        settings = Settings.from_environ(os.environ)
    except SettingError as exc:
        print(f"control plane: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level)
    if settings.admin_api_exposed:
        log.warning(
            "the admin API on %s (FFAAS_CONTROL_PLANE_HOST) has no FFAAS_ADMIN_TOKEN and "
            "FFAAS_ALLOW_INSECURE_ADMIN is set: anyone who reaches it can deploy and run code",
            settings.host,
        )
    serve(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)


if __name__ == "__main__":
    main()
