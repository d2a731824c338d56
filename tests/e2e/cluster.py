"""A whole FFAAS installation for one test module or test: Redis, a control plane, data planes.

Each `Cluster` has its own Redis key prefix, its own admin token and its own data
directory per plane (the control plane's SQLite file, each data plane's module
cache), so clusters never see each other even when they share a redis-server.
Everything is driven over plain HTTP; `close()` stops every plane it started. Every response
the cluster's clients (`http`, `admin`) receive from a plane is checked against that plane's
OpenAPI document (`openapi_conformance.py`), so the e2e tests also hold the documents true.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import RedisServer, free_port
from tests.e2e.openapi_conformance import Conformance
from tests.e2e.processes import POLL_S, START_TIMEOUT_S, Plane, PlaneStartupError

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
NIL_UUID = "00000000-0000-0000-0000-000000000000"

# Every cluster still running, so a failing test's report can show the planes' logs.
LIVE: list[Cluster] = []


class Cluster:
    def __init__(self, workdir: Path, redis: RedisServer, settings: Mapping[str, str] | None = None) -> None:
        """`settings`: extra FFAAS_* variables given to every plane of this cluster."""
        self.workdir = workdir
        self.redis = redis
        self.prefix = f"e2e-{secrets.token_hex(6)}"
        self.admin_token = secrets.token_hex(16)
        self.settings = dict(settings or {})
        self.public_port = free_port()
        self.control_plane: Plane | None = None
        self.data_planes: list[Plane] = []
        self._data_plane_numbers = itertools.count(1)
        self.conformance: dict[str, Conformance] = {}
        hooks = {"response": [self.check_conformance]}
        self.http = httpx.Client(timeout=30.0, event_hooks=hooks)
        self.admin = httpx.Client(
            timeout=30.0, headers={"authorization": f"Bearer {self.admin_token}"}, event_hooks=hooks
        )
        LIVE.append(self)

    # -- processes ---------------------------------------------------------------------------------

    def common_settings(self) -> dict[str, str]:
        return {
            "FFAAS_REDIS_URL": self.redis.url,
            "FFAAS_REDIS_PREFIX": self.prefix,
            "FFAAS_ADMIN_TOKEN": self.admin_token,
            "FFAAS_LOG_LEVEL": "info",
            **self.settings,
        }

    def start(self, data_planes: int = 1, *, workers: int = 1) -> None:
        """The control plane and `data_planes` data planes of `workers` worker processes each, started
        side by side; all ready (every worker) on return.

        The first data plane listens on the public URL's port, so endpoint URLs reach it.
        """
        planes = [self._control_plane()]
        for index in range(data_planes):
            port = self.public_port if index == 0 else None
            planes.append(self.data_plane(port=port, workers=workers))
        for plane in planes:
            plane.launch()
        deadline = _deadline()
        for plane in planes:
            plane.finish_start(deadline)
            wait_for_workers(plane, deadline)
        self.load_document("control", planes[0])
        if data_planes:
            self.load_document("data", planes[1])
        if data_planes and self.data_planes[0].port != self.public_port:
            # Its port was taken and it moved: endpoint URLs must name the port it serves on.
            self.public_port = self.data_planes[0].port
            assert self.control_plane is not None
            self.control_plane.settings["FFAAS_PUBLIC_URL"] = f"http://127.0.0.1:{self.public_port}"
            self.control_plane.restart()

    def _control_plane(self) -> Plane:
        plane = Plane(
            "control_plane",
            port=free_port(),
            settings={
                **self.common_settings(),
                "FFAAS_DATA_DIR": str(self._fresh_dir("control-plane")),
                "FFAAS_CONTROL_PLANE_HOST": "127.0.0.1",
                "FFAAS_PUBLIC_URL": f"http://127.0.0.1:{self.public_port}",
            },
            log_path=self.workdir / "logs" / "control-plane.log",
        )
        self.control_plane = plane
        return plane

    def data_plane(
        self,
        *,
        port: int | None = None,
        data_dir: Path | None = None,
        settings: Mapping[str, str] | None = None,
        workers: int = 1,
    ) -> Plane:
        """A new data plane of this cluster (not started): its own data dir unless `data_dir` is given,
        `workers` worker processes (FFAAS_DATA_PLANE_WORKERS).

        `settings` override the cluster's for this plane only.
        """
        number = next(self._data_plane_numbers)
        port = port or free_port()
        plane = Plane(
            "data_plane",
            port=port,
            settings={
                **self.common_settings(),
                "FFAAS_DATA_DIR": str(data_dir or self._fresh_dir(f"data-plane-{number}")),
                "FFAAS_DATA_PLANE_HOST": "127.0.0.1",
                "FFAAS_PLANE_ID": f"e2e-data-plane-{number}",
                "FFAAS_DATA_PLANE_WORKERS": str(workers),
                **(settings or {}),
            },
            log_path=self.workdir / "logs" / f"data-plane-{number}.log",
        )
        self.data_planes.append(plane)
        return plane

    def start_data_plane(
        self, *, data_dir: Path | None = None, settings: Mapping[str, str] | None = None, workers: int = 1
    ) -> Plane:
        plane = self.data_plane(data_dir=data_dir, settings=settings, workers=workers)
        plane.start()
        wait_for_workers(plane, _deadline())
        return plane

    def _fresh_dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True)
        return path

    def close(self) -> None:
        """Stop every plane (data planes first), even if one stop fails."""
        errors: list[BaseException] = []
        for plane in [*reversed(self.data_planes), self.control_plane]:
            if plane is None:
                continue
            try:
                plane.stop()
            except BaseException as exc:  # keep stopping the others
                errors.append(exc)
        self.http.close()
        self.admin.close()
        if self in LIVE:
            LIVE.remove(self)
        if errors:
            raise errors[0]

    @property
    def database_path(self) -> Path:
        """The control plane's SQLite file (read it directly to see what was ingested, bypassing GET)."""
        assert self.control_plane is not None
        return Path(self.control_plane.settings["FFAAS_DATA_DIR"]) / "control_plane.sqlite3"

    def planes(self) -> Iterator[Plane]:
        if self.control_plane is not None:
            yield self.control_plane
        yield from self.data_planes

    def describe_logs(self) -> str:
        return "\n".join(plane.describe_log() for plane in self.planes())

    # -- the OpenAPI documents ----------------------------------------------------------------------

    def check_conformance(self, response: httpx.Response) -> None:
        """Assert that `response` is one the answering plane's OpenAPI document allows."""
        port = response.request.url.port
        if self.control_plane is not None and port == self.control_plane.port:
            kind, plane = "control", self.control_plane
        else:
            plane = next((data for data in self.data_planes if data.port == port), None)
            if plane is None:
                return  # not a plane (a target server of outbound requests)
            kind = "data"
        if kind not in self.conformance:
            self.load_document(kind, plane)
        self.conformance[kind].check(response)

    def load_document(self, kind: str, plane: Plane) -> None:
        """Read a plane's OpenAPI document, once per kind of plane (done at start, while the planes
        surely answer: a response may come while its plane is stopping)."""
        document = httpx.get(f"{plane.url}/openapi.json", timeout=30.0)
        assert document.status_code == 200, f"GET /openapi.json on {plane!r}: {document.status_code}"
        self.conformance[kind] = Conformance(document.json())

    # -- the admin API -----------------------------------------------------------------------------

    @property
    def admin_url(self) -> str:
        assert self.control_plane is not None
        return self.control_plane.url

    def create_endpoint(self, name: str) -> dict[str, Any]:
        response = self.admin.post(f"{self.admin_url}/endpoint", json={"name": name})
        assert response.status_code == 201, f"POST /endpoint: {response.status_code} {response.text}"
        endpoint: dict[str, Any] = response.json()
        return endpoint

    def deploy(self, endpoint_id: str, wasm: bytes) -> dict[str, Any]:
        response = self.post_module(endpoint_id, wasm)
        assert response.status_code == 201, f"deploy: {response.status_code} {response.text}"
        deploy: dict[str, Any] = response.json()
        return deploy

    def post_module(self, endpoint_id: str, wasm: bytes) -> httpx.Response:
        return self.admin.post(
            f"{self.admin_url}/endpoint/{endpoint_id}/deploy",
            content=bytes(wasm),
            headers={"content-type": "application/octet-stream"},
        )

    def get_endpoint(self, endpoint_id: str) -> httpx.Response:
        return self.admin.get(f"{self.admin_url}/endpoint/{endpoint_id}")

    def new_deployed_endpoint(self, name: str, wasm: bytes) -> str:
        endpoint_id: str = self.create_endpoint(name)["id"]
        self.deploy(endpoint_id, wasm)
        return endpoint_id

    # -- processors --------------------------------------------------------------------------------

    def create_processor(
        self, code: str, *, language: str = "js", runtime: str = "v8", name: str = "processor"
    ) -> dict[str, Any]:
        fields = {"name": name, "language": language, "runtime": runtime, "code": code}
        response = self.admin.post(f"{self.admin_url}/admin/processor", json=fields)
        assert response.status_code == 201, f"POST /admin/processor: {response.status_code} {response.text}"
        processor: dict[str, Any] = response.json()
        return processor

    def run_processor(
        self,
        processor_id: str,
        *,
        prelude: bool = True,
        method: str = "GET",
        plane: Plane | None = None,
        query: str = "",
        **kwargs: Any,
    ) -> httpx.Response:
        """`/processor/<id>/run_with_prelude` (or `/run`) on `plane`, by default the first data plane."""
        plane = plane or self.data_planes[0]
        entry = "run_with_prelude" if prelude else "run"
        url = f"{plane.url}/processor/{processor_id}/{entry}" + (f"?{query}" if query else "")
        return self.http.request(method, url, **kwargs)

    def conversation(self, response: httpx.Response) -> dict[str, Any]:
        """`GET /conversation/<FH-Conversation-Id>` of a run's response, read without the admin token."""
        return self.conversation_by_id(response.headers["fh-conversation-id"])

    def conversation_by_id(self, conversation_id: str) -> dict[str, Any]:
        read = self.http.get(f"{self.admin_url}/conversation/{conversation_id}")
        assert read.status_code == 200, f"GET /conversation/{conversation_id}: {read.status_code} {read.text}"
        conversation: dict[str, Any] = read.json()
        return conversation

    # -- the data planes ---------------------------------------------------------------------------

    def call(self, plane: Plane, endpoint_id: str, sub_path: str = "", **kwargs: Any) -> httpx.Response:
        method = kwargs.pop("method", "GET")
        return self.http.request(method, f"{plane.url}/{endpoint_id}{sub_path}", **kwargs)


def _deadline() -> float:
    return time.monotonic() + START_TIMEOUT_S


def wait_for_workers(plane: Plane, deadline: float) -> None:
    """Wait until every worker of a data plane listens (its supervisor logs "all N worker(s) ready"
    once); `/status` answers as soon as the first one does."""
    workers = int(plane.settings.get("FFAAS_DATA_PLANE_WORKERS", "1"))
    if plane.package != "data_plane" or workers == 1:
        return
    said = f"all {workers} worker(s) ready"
    while said not in plane.log_path.read_text(errors="replace").rpartition("=== starting")[2]:
        if not plane.running or time.monotonic() > deadline:
            raise PlaneStartupError(f"{plane!r}: not every worker became ready\n{plane.describe_log()}")
        time.sleep(POLL_S)


def assert_error(response: httpx.Response, status: int, *fragments: str) -> str:
    """`response` is the JSON error body, exactly {"code", "message"}, naming every fragment."""
    assert response.status_code == status, (
        f"expected {status}, got {response.status_code}: {response.text[:500]}"
    )
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"code", "message"}, body
    assert body["code"] == status, body
    message = body["message"]
    assert isinstance(message, str) and message, body
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in the error message {message!r}"
    return message


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str  # with the query string, as on the request line
    headers: dict[str, list[str]]  # lower-case name -> values, in order
    body: bytes


class TargetServer:
    """A real HTTP server on 127.0.0.1 for processors' outbound requests (no test reaches the internet).

    It records every request it receives and answers `?status=<nnn>` (default 200) with the JSON
    `{"received": "<request body>", "method": ..., "path": ...}` and the header `x-target: ffaas-e2e`.
    """

    def __init__(self) -> None:
        self.received: list[ReceivedRequest] = []
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output clean

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers: dict[str, list[str]] = {}
                for name, value in self.headers.items():
                    headers.setdefault(name.lower(), []).append(value)
                target.received.append(ReceivedRequest(self.command, self.path, headers, body))
                query = self.path.partition("?")[2]
                params = dict(pair.partition("=")[::2] for pair in query.split("&") if pair)
                status = int(params.get("status", "200"))
                path = self.path.partition("?")[0]
                answer = json.dumps(
                    {"received": body.decode("utf-8", "replace"), "method": self.command, "path": path}
                ).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("x-target", "ffaas-e2e")
                self.send_header("connection", "close")  # no idle keep-alive threads at shutdown
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="target-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> TargetServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def received_on(self, path: str) -> list[ReceivedRequest]:
        """The requests received whose path (without the query) is `path`."""
        return [request for request in self.received if request.path.partition("?")[0] == path]
