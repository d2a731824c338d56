"""The command line is a client of the HTTP APIs: it imports no plane and nothing of shared/ (nor
the servers' framework), so it can be installed and run apart from the servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_layering import REPO, forbidden_imports, ids, sources


@pytest.mark.parametrize("path", sources(REPO / "ffaas_cli"), ids=ids)
def test_the_cli_imports_no_plane_and_no_server_code(path: Path) -> None:
    assert not forbidden_imports(
        path, ("control_plane", "data_plane", "shared", "starlette", "uvicorn", "tests")
    )
