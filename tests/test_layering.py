"""Dependencies point one way; walking every module's imports holds it (STYLE.md, "A layout").

- `shared/` is the contract between the planes: it imports neither plane.
- `data_plane/runtime/` holds engines only: no HTTP framework (Starlette, uvicorn), no Redis
  (redis-py, our Redis connection or key names), and nothing of the data plane above it
  (executors, dispatch, host capabilities, the app): executors -> runtime, never back.
- In the control plane, storage and validation know nothing of HTTP or routes, and no module
  imports the data plane.

Every import counts, at the top of a module or inside a function, relative ones resolved.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / "shared"
CONTROL_PLANE = REPO / "control_plane"
RUNTIME = REPO / "data_plane" / "runtime"


def module_name(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = REPO) -> set[str]:
    """Every module `path` imports; `from package import name` counts as package and package.name."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def forbidden_imports(
    path: Path, forbidden: tuple[str, ...], allowed: tuple[str, ...] = (), root: Path = REPO
) -> set[str]:
    return {
        name
        for name in imported_modules(path, root)
        if any(name == prefix or name.startswith(f"{prefix}.") for prefix in forbidden)
        and not any(name == prefix or name.startswith(f"{prefix}.") for prefix in allowed)
    }


def sources(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.py"))


def ids(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.mark.parametrize("path", sources(SHARED), ids=ids)
def test_shared_imports_no_plane(path: Path) -> None:
    assert not forbidden_imports(path, ("control_plane", "data_plane", "tests"))


@pytest.mark.parametrize("path", sources(RUNTIME), ids=ids)
def test_the_runtime_imports_no_http_no_redis_and_nothing_above_it(path: Path) -> None:
    http = ("starlette", "uvicorn")
    redis = ("redis", "shared.redis", "shared.keys")

    assert not forbidden_imports(
        path, (*http, *redis, "data_plane", "control_plane"), ("data_plane.runtime",)
    )


@pytest.mark.parametrize(
    "path",
    [
        *sorted((CONTROL_PLANE / "storage").glob("*.py")),
        CONTROL_PLANE / "module_validation.py",
        CONTROL_PLANE / "endpoint_env.py",
    ],
    ids=ids,
)
def test_control_plane_domain_modules_do_not_import_http_or_routes(path: Path) -> None:
    assert not forbidden_imports(path, ("starlette", "uvicorn", "control_plane.routes", "control_plane.app"))


@pytest.mark.parametrize("path", sources(CONTROL_PLANE), ids=ids)
def test_the_control_plane_never_imports_the_data_plane(path: Path) -> None:
    assert not forbidden_imports(path, ("data_plane",))


def test_the_walk_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The checker itself: top-level, from-, function-level and relative imports are all seen."""
    probe = tmp_path / "data_plane" / "runtime" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "import redis.asyncio\n"
        "from starlette.requests import Request\n"
        "def later():\n"
        "    from ..audit import ConversationRecorder\n"
        "    from . import wasm\n"
        "    from shared import keys\n"
    )
    found = forbidden_imports(
        probe, ("starlette", "redis", "shared.keys", "data_plane"), ("data_plane.runtime",), root=tmp_path
    )

    assert found == {
        "redis.asyncio",
        "starlette.requests",
        "starlette.requests.Request",
        "data_plane.audit",
        "data_plane.audit.ConversationRecorder",
        "shared.keys",
    }
