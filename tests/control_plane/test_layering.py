"""Dependencies point one way: storage and validation know nothing of HTTP; shared knows no plane."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import control_plane

PACKAGE = Path(control_plane.__file__).parent


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path",
    [
        *sorted((PACKAGE / "storage").glob("*.py")),
        PACKAGE / "module_validation.py",
        PACKAGE / "endpoint_env.py",
    ],
    ids=lambda path: str(path.relative_to(PACKAGE)),
)
def test_domain_modules_do_not_import_http_or_routes(path: Path) -> None:
    forbidden = ("starlette", "uvicorn", "control_plane.routes", "control_plane.app")

    assert not {name for name in imported_modules(path) if name.startswith(forbidden)}


def test_the_control_plane_never_imports_the_data_plane() -> None:
    for path in PACKAGE.rglob("*.py"):
        assert not {name for name in imported_modules(path) if name.startswith("data_plane")}, path
