"""`python -m bench.hot_path` drives the real data plane through its ASGI entry point: its figures
are only worth something if the requests it makes are answered as wrk's are, and recorded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.hot_path import REPO


def test_it_measures_both_hellos_at_each_concurrency_and_says_where_runs_went(tmp_path: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "bench.hot_path",
        "--requests",
        "20",
        "--repeats",
        "2",
        "--concurrency",
        "1,5",
    ]
    done = subprocess.run(
        [*argv, "--data-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["wagi", "c=1"],
        ["wagi", "c=5"],
        ["wasm", "c=1"],
        ["wasm", "c=5"],
    ], done.stdout
    for line in lines:
        assert "µs CPU/request" in line and "runs_inline=" in line and "runs_on_pool=" in line, line
