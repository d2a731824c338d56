"""Processor limits and settings: FFAAS_MAX_PROCESSOR_CODE_BYTES (413 naming it), and the three
processor settings read from the environment with their defaults."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from control_plane.app import create_app
from control_plane.settings import DEFAULT_ESBUILD_PATH, Settings
from shared.settings import SettingError
from tests.control_plane.local_client import LocalTestClient
from tests.control_plane.test_processors import JS_CODE, create_processor, processor_body


def test_code_over_the_limit_is_413_naming_the_setting(settings: Settings) -> None:
    code = JS_CODE + "//" + "x" * 100
    limit = len(code.encode()) - 1
    with LocalTestClient(create_app(replace(settings, max_processor_code_bytes=limit))) as client:
        created = create_processor(client, code=JS_CODE)

        response = client.post("/admin/processor", json=processor_body(code=code))
        replaced = client.put(f"/admin/processor/{created['id']}", json=processor_body(code=code))
        at_limit = client.post("/admin/processor", json=processor_body(code=code[:-1]))

        message = f"code is {limit + 1} bytes, larger than {limit} bytes (FFAAS_MAX_PROCESSOR_CODE_BYTES)"
        assert response.status_code == 413
        assert response.json() == {"code": 413, "message": message}
        assert replaced.status_code == 413
        assert at_limit.status_code == 201
        assert client.get(f"/admin/processor/{created['id']}").json() == created


def test_a_body_far_over_the_limit_is_413_before_parsing(settings: Settings) -> None:
    with LocalTestClient(create_app(replace(settings, max_processor_code_bytes=10))) as client:
        response = client.post("/admin/processor", content=b"{" + b" " * 200_000 + b"}")

    assert response.status_code == 413
    assert response.json()["message"] == (
        f"request body is larger than {10 * 6 + 64 * 1024} bytes; "
        "code may be at most 10 bytes (FFAAS_MAX_PROCESSOR_CODE_BYTES)"
    )


def test_processor_settings_have_defaults_and_are_read_from_the_environment(tmp_path: Path) -> None:
    defaults = Settings.from_environ({})
    settings = Settings.from_environ(
        {
            "FFAAS_MAX_PROCESSOR_CODE_BYTES": "2048",
            "FFAAS_ESBUILD_PATH": str(tmp_path / "esbuild"),
            "FFAAS_TRANSPILE_TIMEOUT_MS": "1500",
        }
    )

    assert (defaults.max_processor_code_bytes, defaults.transpile_timeout_ms) == (1048576, 10000)
    assert defaults.esbuild_path == DEFAULT_ESBUILD_PATH
    assert DEFAULT_ESBUILD_PATH.parts[-3:] == ("node_modules", ".bin", "esbuild")
    assert (DEFAULT_ESBUILD_PATH.parents[2] / "package.json").is_file()
    assert settings.max_processor_code_bytes == 2048
    assert settings.esbuild_path == tmp_path / "esbuild"
    assert settings.transpile_timeout_ms == 1500


@pytest.mark.parametrize("name", ["FFAAS_MAX_PROCESSOR_CODE_BYTES", "FFAAS_TRANSPILE_TIMEOUT_MS"])
@pytest.mark.parametrize("value", ["lots", "0"])
def test_a_malformed_processor_setting_fails_naming_it(name: str, value: str) -> None:
    with pytest.raises(SettingError, match=name):
        Settings.from_environ({name: value})
