"""The real `ffaas` command (the console script `make install` puts in .venv/bin) against real planes.

`ffaas(...)` runs it as a subprocess against the module's cluster, with the cluster's URLs and
admin token in the environment and a config directory of its own (XDG_CONFIG_HOME, HOME), so
no test reads or writes the developer's stored tokens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RedisServer
from tests.e2e.cluster import Cluster
from tests.e2e.conftest import running_cluster

FFAAS = Path(sys.executable).parent / "ffaas"
COMMAND_TIMEOUT_S = 60


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def error_line(self) -> str:
        """The command's one line on stderr, checked to be exactly one line and no traceback."""
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, f"expected one error line, got:\n{self.stderr}"
        assert lines[0].startswith("error: "), lines[0]
        return lines[0]


class Ffaas:
    """Runs `ffaas ARGS...` with this cluster's settings (any of which `env` may override or drop)."""

    def __init__(self, cluster: Cluster, home: Path) -> None:
        self.cluster = cluster
        self.home = home

    def environment(self, env: Mapping[str, str | None] | None = None) -> dict[str, str]:
        base = {key: value for key, value in os.environ.items() if not key.startswith("FFAAS_")}
        base.update(
            {
                "FFAAS_URL": self.cluster.admin_url,
                "FFAAS_DATA_PLANE_URL": self.cluster.data_planes[0].url,
                "FFAAS_ADMIN_TOKEN": self.cluster.admin_token,
                "XDG_CONFIG_HOME": str(self.home / "config"),
                "HOME": str(self.home),
                "NO_COLOR": "1",
            }
        )
        for key, value in (env or {}).items():
            if value is None:
                base.pop(key, None)
            else:
                base[key] = value
        return base

    def __call__(
        self, *args: str, env: Mapping[str, str | None] | None = None, input: bytes | None = None
    ) -> Ran:
        done = subprocess.run(
            [str(FFAAS), *args],
            env=self.environment(env),
            input=input if input is not None else b"",
            capture_output=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        ran = Ran(done.returncode, done.stdout.decode(), done.stderr.decode())
        assert "Traceback" not in ran.stderr, ran.stderr
        return ran

    def ok(self, *args: str, **kwargs: Any) -> Ran:
        ran = self(*args, **kwargs)
        assert ran.code == 0, f"ffaas {' '.join(args)} exited {ran.code}:\n{ran.stdout}\n{ran.stderr}"
        return ran


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cli"), redis_server) as started:
        yield started


@pytest.fixture
def ffaas(cluster: Cluster, tmp_path: Path) -> Ffaas:
    assert FFAAS.exists(), f"{FFAAS} is missing: run `make install` (pip install -e .)"
    return Ffaas(cluster, tmp_path)
