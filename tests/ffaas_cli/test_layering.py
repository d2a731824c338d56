"""The command line is a client of the HTTP APIs: it imports no plane and nothing of shared/,
so it can be installed and run apart from the servers."""

from __future__ import annotations

from pathlib import Path

import ffaas_cli
from tests.control_plane.test_layering import imported_modules

PACKAGE = Path(ffaas_cli.__file__).parent


def test_the_cli_imports_no_plane_and_no_server_code() -> None:
    for path in PACKAGE.rglob("*.py"):
        server = {
            name
            for name in imported_modules(path)
            if name.split(".")[0] in {"control_plane", "data_plane", "shared", "starlette"}
        }
        assert not server, f"{path.name} imports {server}"
