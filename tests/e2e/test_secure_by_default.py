"""The control plane as a real process: no open admin API by accident, and no token in its output.

- On a non-loopback address without FFAAS_ADMIN_TOKEN it exits at once with status 2 and
  a message naming the address, the settings involved and the escape hatch.
- FFAAS_ALLOW_INSECURE_ADMIN=1 starts it anyway, with a warning in its log.
- Requests with a wrong token and with the right one leave neither token in its output,
  even at `trace` level, where uvicorn logs every ASGI message.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import RedisServer, free_port
from tests.e2e.processes import REPO, Plane, plane_environment


def control_plane(tmp_path: Path, redis: RedisServer, **settings: str) -> Plane:
    port = free_port()
    return Plane(
        "control_plane",
        port=port,
        settings={
            "FFAAS_REDIS_URL": redis.url,
            "FFAAS_REDIS_PREFIX": f"secure-{secrets.token_hex(6)}",
            "FFAAS_DATA_DIR": str(tmp_path / "control-plane"),
            **settings,
        },
        log_path=tmp_path / "control-plane.log",
    )


def test_a_non_loopback_address_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    environment = plane_environment(
        {
            "FFAAS_CONTROL_PLANE_HOST": "0.0.0.0",
            "FFAAS_DATA_DIR": str(tmp_path),
            "FFAAS_REDIS_URL": "redis://",
        }
    )

    result = subprocess.run(
        [sys.executable, "-m", "control_plane"],
        env=environment,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    for named in ("0.0.0.0", "FFAAS_CONTROL_PLANE_HOST", "FFAAS_ADMIN_TOKEN", "FFAAS_ALLOW_INSECURE_ADMIN=1"):
        assert named in result.stderr, f"{named!r} not in stderr: {result.stderr!r}"
    assert result.stderr.startswith("control plane: refusing to serve the admin API"), result.stderr
    assert not list(tmp_path.iterdir()), "it created files before refusing"


def test_the_escape_hatch_starts_an_open_admin_api_with_a_warning(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    plane = control_plane(
        tmp_path, redis_server, FFAAS_CONTROL_PLANE_HOST="0.0.0.0", FFAAS_ALLOW_INSECURE_ADMIN="1"
    )
    plane.start()
    try:
        listed = httpx.get(f"{plane.url}/endpoint", timeout=10.0)
        log = plane.log_path.read_text()
    finally:
        plane.stop()

    assert listed.status_code == 200, listed.text  # open, as asked
    warnings = [line for line in log.splitlines() if "WARNING" in line and "FFAAS_ADMIN_TOKEN" in line]
    assert warnings, f"no warning in the log:\n{log}"
    assert "0.0.0.0" in warnings[0] and "FFAAS_ALLOW_INSECURE_ADMIN" in warnings[0], warnings


def test_neither_a_wrong_nor_the_right_token_reaches_the_output(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    token = f"right-{secrets.token_hex(16)}"
    wrong = f"wrong-{secrets.token_hex(16)}"
    plane = control_plane(tmp_path, redis_server, FFAAS_ADMIN_TOKEN=token, FFAAS_LOG_LEVEL="trace")
    plane.start()
    try:
        with httpx.Client(base_url=plane.url, timeout=10.0) as client:
            refused = client.get("/endpoint", headers={"authorization": f"Bearer {wrong}"})
            bare = client.post("/endpoint", headers={"authorization": wrong}, json={"name": "x"})
            right = {"authorization": f"Bearer {token}"}
            created = client.post("/endpoint", headers=right, json={"name": "logged?"})
            malformed = client.post(
                "/endpoint", headers={**right, "content-type": "application/json"}, content=b"{not json"
            )
            unknown = client.get("/no/such/route", headers=right)
    finally:
        plane.stop()  # SIGTERM: every log line is flushed
    output = plane.log_path.read_bytes()

    assert (refused.status_code, bare.status_code) == (401, 401)
    assert (created.status_code, malformed.status_code, unknown.status_code) == (201, 400, 404)
    # The output did see these requests (uvicorn traces each ASGI message at this level) ...
    assert output.count(b"Started scope=") >= 5, output[-2000:].decode(errors="replace")
    # ... but never a token, whole or in part.
    for secret in (token, wrong):
        assert secret.encode() not in output
        assert secret.split("-", 1)[1][:12].encode() not in output
