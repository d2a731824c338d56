"""Fixtures of the end-to-end suite: built example modules, and clusters that are always stopped.

A test module that does not disturb its processes starts one cluster for all its tests
(`running_cluster` in a module-scoped fixture, on the session's redis-server); a test
that restarts or stops something builds its own with `cluster_factory`. When a test
fails, the report gets the log tails of every plane still running.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import subprocess
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path

import pytest

from tests.conftest import RedisServer
from tests.e2e.cluster import LIVE, Cluster
from tests.e2e.processes import REPO

BUILD = REPO / "build" / "examples"


@pytest.fixture(scope="session")
def examples() -> Path:
    """The directory holding echo.wasm and hello.wasm, built with `make -C examples` if missing."""
    if not (BUILD / "echo.wasm").exists() or not (BUILD / "hello.wasm").exists():
        if shutil.which("make") is None:
            pytest.fail("make is not installed; run `make install` first")
        result = subprocess.run(["make", "-C", str(REPO / "examples")], capture_output=True, text=True)
        assert result.returncode == 0, f"make -C examples failed:\n{result.stdout}{result.stderr}"
    return BUILD


@pytest.fixture(scope="session")
def hello_wasm(examples: Path) -> bytes:
    return (examples / "hello.wasm").read_bytes()


@pytest.fixture(scope="session")
def echo_wasm(examples: Path) -> bytes:
    return (examples / "echo.wasm").read_bytes()


@contextlib.contextmanager
def running_cluster(
    workdir: Path,
    redis: RedisServer,
    *,
    data_planes: int = 1,
    workers: int = 1,
    settings: Mapping[str, str] | None = None,
) -> Iterator[Cluster]:
    """A started cluster, stopped on exit whatever happened (a failed start included); each data
    plane runs `workers` worker processes."""
    cluster = Cluster(workdir, redis, settings)
    try:
        cluster.start(data_planes, workers=workers)
        yield cluster
    finally:
        cluster.close()


ClusterFactory = Callable[..., Cluster]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server for one test, which may stop it; appendonly, so its data survives a restart.

    Request it before `cluster_factory`, so it is stopped after the cluster's planes.
    """
    redis_dir = tmp_path / "own-redis"
    redis_dir.mkdir()
    redis = RedisServer(redis_dir)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def cluster_factory(tmp_path: Path, redis_server: RedisServer) -> Iterator[ClusterFactory]:
    """`cluster_factory(data_planes=1, workers=1, settings=None, redis=None)`: a cluster for this test
    only."""
    numbers = itertools.count(1)
    with contextlib.ExitStack() as stack:

        def make(
            *,
            data_planes: int = 1,
            workers: int = 1,
            settings: Mapping[str, str] | None = None,
            redis: RedisServer | None = None,
        ) -> Cluster:
            workdir = tmp_path / f"cluster-{next(numbers)}"
            cluster = running_cluster(
                workdir, redis or redis_server, data_planes=data_planes, workers=workers, settings=settings
            )
            return stack.enter_context(cluster)

        yield make


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and LIVE:
        report.sections.append(("plane logs", "\n".join(cluster.describe_logs() for cluster in LIVE)))
    return report
