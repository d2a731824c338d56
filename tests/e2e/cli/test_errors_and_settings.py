"""What goes wrong is one line and an exit status; `status`, `login`/`logout`, and shell completion."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from tests.conftest import free_port
from tests.e2e.cli.conftest import FFAAS, Ffaas
from tests.e2e.cluster import Cluster


def test_a_plane_that_is_down_is_named_with_its_url(ffaas: Ffaas) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"

    control = ffaas("endpoint", "list", env={"FFAAS_URL": nowhere})
    data = ffaas("call", "00000000-0000-0000-0000-0000000000cc", env={"FFAAS_DATA_PLANE_URL": nowhere})
    option = ffaas("--url", nowhere, "processor", "list")

    assert control.code == data.code == option.code == 1
    assert control.error_line == f"error: cannot reach the control plane at {nowhere}: connection refused"
    assert data.error_line == f"error: cannot reach the data plane at {nowhere}: connection refused"
    assert option.error_line == control.error_line


def test_a_wrong_or_missing_token_says_where_the_token_comes_from(ffaas: Ffaas) -> None:
    wrong = ffaas("endpoint", "list", env={"FFAAS_ADMIN_TOKEN": "not-the-token"})
    missing = ffaas("endpoint", "list", env={"FFAAS_ADMIN_TOKEN": None})

    assert wrong.code == missing.code == 1
    assert wrong.error_line == (
        "error: wrong admin token in the Authorization header (FFAAS_ADMIN_TOKEN) (HTTP 401); "
        "the token comes from FFAAS_ADMIN_TOKEN"
    )
    assert missing.error_line.endswith("(HTTP 401); set FFAAS_ADMIN_TOKEN or run `ffaas login`")


def test_deploying_a_missing_file_or_not_wasm(ffaas: Ffaas, cluster: Cluster, tmp_path: Path) -> None:
    endpoint_id = cluster.create_endpoint("bad-deploys")["id"]
    not_wasm = tmp_path / "notes.txt"
    not_wasm.write_text("hello")

    missing = ffaas("endpoint", "deploy", endpoint_id, str(tmp_path / "nope.wasm"))
    refused = ffaas("endpoint", "deploy", endpoint_id, str(not_wasm))

    assert missing.code == 2
    assert "nope.wasm' does not exist" in missing.error_line
    assert refused.code == 1
    assert (
        refused.stderr.strip().splitlines()[-1]
        == "error: not a WebAssembly module: missing \\0asm magic (HTTP 400)"
    )
    assert cluster.get_endpoint(endpoint_id).json()["deploy_history"] == []


def test_unknown_ids_are_the_apis_404(ffaas: Ffaas) -> None:
    missing = "00000000-0000-0000-0000-0000000000dd"

    for args, kind in [
        (("endpoint", "get", missing), "endpoint"),
        (("processor", "delete", missing), "processor"),
        (("conversation", "show", missing), "conversation"),
    ]:
        ran = ffaas(*args)
        assert ran.code == 1, args
        assert ran.error_line == f"error: {kind} {missing} not found (HTTP 404)"


def test_bad_usage_exits_2_with_one_line(ffaas: Ffaas) -> None:
    unknown_command = ffaas("endpoint", "frobnicate")
    unknown_option = ffaas("endpoint", "list", "--colour")
    bad_url = ffaas("status", env={"FFAAS_URL": "localhost:3000"})

    assert unknown_command.code == unknown_option.code == bad_url.code == 2
    assert "No such command 'frobnicate'" in unknown_command.error_line
    assert "No such option: --colour" in unknown_option.error_line
    assert (
        bad_url.error_line
        == "error: --url / FFAAS_URL must be an http:// or https:// URL, got 'localhost:3000'"
    )


def test_status_shows_both_planes(ffaas: Ffaas, cluster: Cluster) -> None:
    both = ffaas.ok("status", "--json").json()
    answered = cluster.http.get(f"{cluster.admin_url}/status").json()
    assert set(both["control_plane"]) == set(answered)  # the API's answer, whole (some figures move)
    assert both["control_plane"]["service"] == "control-plane" and both["control_plane"]["status"] == "ok"
    assert both["data_plane"]["service"] == "data-plane" and both["data_plane"]["status"] == "ok"
    people = ffaas.ok("status").stdout
    assert f"control plane  ok  {cluster.admin_url}" in people
    assert f"data plane  ok  {cluster.data_planes[0].url}" in people

    nowhere = f"http://127.0.0.1:{free_port()}"
    half = ffaas("status", "--json", env={"FFAAS_DATA_PLANE_URL": nowhere})
    assert half.code == 1
    assert half.json()["data_plane"] == {
        "error": f"cannot reach the data plane at {nowhere}: connection refused"
    }
    assert half.json()["control_plane"]["status"] == "ok"


def test_login_stores_the_token_privately_and_logout_forgets_it(
    ffaas: Ffaas, cluster: Cluster, tmp_path: Path
) -> None:
    without_token = {"FFAAS_ADMIN_TOKEN": None}
    refused = ffaas("login", env=without_token, input=b"not-the-token\n")
    credentials = tmp_path / "config" / "ffaas" / "credentials.json"
    assert refused.code == 1 and "wrong admin token" in refused.error_line
    assert not credentials.exists()

    stored = ffaas.ok("login", env=without_token, input=f"{cluster.admin_token}\n".encode())

    assert str(credentials) in stored.stdout
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(credentials.parent.stat().st_mode) == 0o700
    assert cluster.admin_token in credentials.read_text()
    assert ffaas.ok("endpoint", "list", "--json", env=without_token).json() is not None
    wrong_env = ffaas("endpoint", "list", env={"FFAAS_ADMIN_TOKEN": "env-wins"})
    assert wrong_env.code == 1, "FFAAS_ADMIN_TOKEN must win over a stored token"

    ffaas.ok("logout", env=without_token)
    assert ffaas("endpoint", "list", env=without_token).code == 1
    assert cluster.admin_token not in credentials.read_text()


def test_shell_completion_is_available(ffaas: Ffaas) -> None:
    # Typer finds the shell among the command's parents, as when a person types it in bash.
    shown = subprocess.run(
        ["bash", "-c", f"{FFAAS} --show-completion"],
        env=ffaas.environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert shown.returncode == 0, shown.stderr
    assert "_FFAAS_COMPLETE=complete_bash" in shown.stdout and "complete " in shown.stdout
