"""Running wrk (https://github.com/wg/wrk, Debian's `wrk`) and reading its `--latency` report.

`run_wrk()` runs one load test and returns a `WrkResult`; `start_wrk()` starts one
in the background, to be ended by `BackgroundWrk.finish()` (SIGINT: wrk then prints
its report for the time it ran); `parse_wrk_output()` turns wrk's printed report
into figures. A run counts as failed (`ok` is
False) when wrk saw any socket error or error status, or completed no request.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

WRK_HINT = "run `make install` (Debian/Ubuntu package `wrk`)"

_TIME_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PERCENTILE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_RUNNING = re.compile(r"^Running (\S+) test @ (\S+)", re.MULTILINE)
_SHAPE = re.compile(r"^\s*(\d+) threads and (\d+) connections", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),", re.MULTILINE)
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)
# wrk's wording; what it counts is responses with a status of 400 or more.
_ERROR_STATUSES = re.compile(r"Non-2xx or 3xx responses: (\d+)", re.MULTILINE)
_REQUESTS_PER_S = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)


class WrkError(RuntimeError):
    """wrk is missing, failed to run, or printed a report this module cannot read."""


@dataclass(frozen=True)
class WrkResult:
    url: str
    threads: int
    connections: int
    requests: int
    elapsed_s: float
    requests_per_s: float
    latency_ms: dict[str, float]
    """Percentile ("50", "75", "90", "99") -> milliseconds."""
    socket_errors: dict[str, int]
    """connect, read, write, timeout -> count (all 0 when wrk printed no such line)."""
    error_statuses: int
    """Responses with status >= 400 (wrk's "Non-2xx or 3xx responses")."""

    @property
    def p50_ms(self) -> float:
        return self.latency_ms["50"]

    @property
    def p99_ms(self) -> float:
        return self.latency_ms["99"]

    @property
    def errors(self) -> int:
        return self.error_statuses + sum(self.socket_errors.values())

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.requests > 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"errors": self.errors, "ok": self.ok}


def _seconds(value: str, unit: str) -> float:
    return float(value) * _TIME_UNITS_S[unit]


def parse_wrk_output(text: str) -> WrkResult:
    """Reads the report `wrk --latency` prints; raises WrkError naming what is missing."""

    def need(pattern: re.Pattern[str], what: str) -> re.Match[str]:
        match = pattern.search(text)
        if match is None:
            raise WrkError(f"wrk output has no {what} line:\n{text}")
        return match

    running = need(_RUNNING, "'Running ... test @ <url>'")
    shape = need(_SHAPE, "'<n> threads and <n> connections'")
    requests = need(_REQUESTS, "'<n> requests in <time>'")
    requests_per_s = need(_REQUESTS_PER_S, "'Requests/sec:'")
    latency_ms = {
        percentile.removesuffix(".0").removesuffix(".00"): round(_seconds(value, unit) * 1000, 4)
        for percentile, value, unit in _PERCENTILE.findall(text)
    }
    missing = {"50", "99"} - latency_ms.keys()
    if missing:
        raise WrkError(f"wrk output has no {sorted(missing)} latency percentiles (no --latency?):\n{text}")
    socket_match = _SOCKET_ERRORS.search(text)
    socket_counts = [int(n) for n in socket_match.groups()] if socket_match else [0, 0, 0, 0]
    statuses_match = _ERROR_STATUSES.search(text)
    return WrkResult(
        url=running.group(2),
        threads=int(shape.group(1)),
        connections=int(shape.group(2)),
        requests=int(requests.group(1)),
        elapsed_s=_seconds(requests.group(2), requests.group(3)),
        requests_per_s=float(requests_per_s.group(1)),
        latency_ms=latency_ms,
        socket_errors=dict(zip(("connect", "read", "write", "timeout"), socket_counts, strict=True)),
        error_statuses=int(statuses_match.group(1)) if statuses_match else 0,
    )


def wrk_missing() -> str | None:
    """Why wrk cannot run here (for skipping what needs it), or None when it is installed."""
    return None if shutil.which("wrk") else f"wrk is not installed: {WRK_HINT}"


def wrk_command(url: str, connections: int, duration_s: float, threads: int) -> list[str]:
    binary = shutil.which("wrk")
    if binary is None:
        raise WrkError(f"wrk is not installed: {WRK_HINT}")
    return [
        binary, "--latency",
        f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration_s))}s",
        "--timeout", "5s",
        url,
    ]  # fmt: skip


def run_wrk(url: str, connections: int, duration_s: float, max_threads: int = 2) -> WrkResult:
    """One wrk run: `connections` connections over min(`max_threads`, `connections`) threads."""
    threads = max(1, min(max_threads, connections))
    command = wrk_command(url, connections, duration_s, threads)
    try:
        finished = subprocess.run(
            command, capture_output=True, text=True, timeout=duration_s + 60, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"wrk did not finish: {' '.join(command)}") from exc
    if finished.returncode != 0:
        raise WrkError(
            f"wrk exited with {finished.returncode}: {' '.join(command)}\n{finished.stderr}{finished.stdout}"
        )
    return parse_wrk_output(finished.stdout)


class BackgroundWrk:
    """wrk loading a URL while the caller measures something else; `finish()` ends it and reads its report."""

    def __init__(self, command: list[str]) -> None:
        self._command = command
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )

    def finish(self, timeout_s: float = 30.0) -> WrkResult:
        """SIGINT wrk (it stops and prints the report of the time it ran) and parse that report."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = self._process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise WrkError(f"wrk did not stop on SIGINT: {' '.join(self._command)}") from exc
        if self._process.returncode != 0:
            raise WrkError(
                f"wrk exited with {self._process.returncode}: {' '.join(self._command)}\n{stderr}{stdout}"
            )
        return parse_wrk_output(stdout)

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.communicate()


def start_wrk(url: str, connections: int, max_duration_s: float, max_threads: int = 2) -> BackgroundWrk:
    """wrk in the background for at most `max_duration_s`; end it sooner with `finish()`."""
    threads = max(1, min(max_threads, connections))
    return BackgroundWrk(wrk_command(url, connections, max_duration_s, threads))
