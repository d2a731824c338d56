"""Small blocking HTTP calls for the benchmark: the control-plane API, readiness and first-call timing.

Deliberately the standard library's `http.client`: no client library's own
start-up or pooling cost ends up in the figures, and a timed call is one
connection and one request, nothing else.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One keep-alive connection to a base URL, reopened after any connection error."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout_s = timeout_s
        self._connection: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            self._connection.request(method, path, body=body, headers=dict(headers or {}))
            reply = self._connection.getresponse()
            data = reply.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if reply.will_close:
            self.close()
        return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, data)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def request(
    base_url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> Response:
    """One request on a fresh connection."""
    with Connection(base_url, timeout_s) as connection:
        return connection.request(method, path, body, headers)


def post_json(base_url: str, path: str, document: Any, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(document).encode()
    return request(base_url, "POST", path, body, {"content-type": "application/json", **(headers or {})})


def wait_until_ok(url: str, timeout_s: float, still_running: Callable[[], None] = lambda: None) -> None:
    """Polls GET `url` until it answers 200. `still_running` raises if the server died meanwhile."""
    parts = urlsplit(url)
    base, path = f"{parts.scheme}://{parts.netloc}", parts.path or "/"
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        still_running()
        try:
            response = request(base, "GET", path, timeout_s=2.0)
            if response.status == 200:
                return
            last = f"status {response.status}"
        except (OSError, http.client.HTTPException) as exc:
            last = type(exc).__name__
        if time.monotonic() > deadline:
            raise TimeoutError(f"GET {url} did not answer 200 within {timeout_s:.0f} s (last: {last})")
        time.sleep(0.05)


def wait_for_every_worker(
    base_url: str, timeout_s: float, still_running: Callable[[], None] = lambda: None
) -> int:
    """Polls the data plane's GET /status on fresh connections until every worker process answered
    (each listens only once ready, and the kernel spreads connections over those listening); returns
    how many workers there are. Without this, wrk's connections, opened once per run, could all land on
    the workers that were ready first."""
    deadline = time.monotonic() + timeout_s
    seen: set[int] = set()
    while True:
        still_running()
        status = request(base_url, "GET", "/status", timeout_s=2.0).json()
        seen.add(int(status["worker"]))
        if len(seen) == int(status["workers"]):
            return len(seen)
        if time.monotonic() > deadline:
            workers = status["workers"]
            raise TimeoutError(f"only workers {sorted(seen)} of {workers} answered in {timeout_s:.0f} s")
        time.sleep(0.01)


@dataclass(frozen=True)
class FirstSuccess:
    """How long until a URL first answered 200, and what it answered before."""

    elapsed_s: float
    attempts: int
    statuses_before: dict[str, int]
    """Status code (or exception name) -> how many calls answered it before the first 200."""
    response: Response


def time_first_success(base_url: str, path: str, timeout_s: float) -> FirstSuccess:
    """Calls GET `path` in a tight loop (one keep-alive connection) until it answers 200."""
    statuses: dict[str, int] = {}
    attempts = 0
    started = time.perf_counter()
    with Connection(base_url, timeout_s=timeout_s) as connection:
        while True:
            attempts += 1
            response: Response | None = None
            try:
                response = connection.request("GET", path)
                status = str(response.status)
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
            elapsed = time.perf_counter() - started
            if response is not None and response.status == 200:
                return FirstSuccess(elapsed, attempts, statuses, response)
            statuses[status] = statuses.get(status, 0) + 1
            if elapsed > timeout_s:
                raise TimeoutError(f"GET {base_url}{path}: no 200 within {timeout_s:.0f} s: {statuses}")
