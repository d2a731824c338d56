"""Settings.from_environ: defaults, derived values, and malformed variables named."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.settings import Settings
from shared.settings import SettingError


def test_defaults_when_nothing_is_set() -> None:
    settings = Settings.from_environ({})

    assert settings == Settings()
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.redis_prefix == "ffaas"
    assert settings.database_path == Path("data/control_plane.sqlite3")
    assert (settings.host, settings.port) == ("127.0.0.1", 3000)
    assert settings.public_url == "http://127.0.0.1:4000"
    assert settings.admin_token == ""
    assert settings.max_module_bytes == 33554432
    assert settings.deploy_ack_timeout_ms == 5000
    assert settings.redis_timeout_ms == 2000
    assert settings.replay_url == settings.public_url
    assert (settings.replay_timeout_ms, settings.replay_concurrency) == (60_000, 2)
    assert (settings.replay_max_batches, settings.replay_batch_max_runs, settings.replay_batches_kept) == (
        4,
        1000,
        1000,
    )


def test_every_variable_is_read() -> None:
    settings = Settings.from_environ(
        {
            "FFAAS_REDIS_URL": "redis://redis:6380/2",
            "FFAAS_REDIS_PREFIX": "staging",
            "FFAAS_DATA_DIR": "/var/lib/ffaas",
            "FFAAS_CONTROL_PLANE_HOST": "0.0.0.0",
            "FFAAS_CONTROL_PLANE_PORT": "3100",
            "FFAAS_PUBLIC_URL": "https://fn.example.com/",
            "FFAAS_ADMIN_TOKEN": "token",
            "FFAAS_MAX_MODULE_BYTES": "1_000_000",
            "FFAAS_DEPLOY_ACK_TIMEOUT_MS": "250",
            "FFAAS_LOG_LEVEL": "DEBUG",
            "FFAAS_DATA_PLANE_URL": "http://data-plane.internal:4000/",
            "FFAAS_REPLAY_TIMEOUT_MS": "9000",
            "FFAAS_REPLAY_CONCURRENCY": "3",
            "FFAAS_REPLAY_MAX_BATCHES": "5",
            "FFAAS_REPLAY_BATCH_MAX_RUNS": "200",
            "FFAAS_REPLAY_BATCHES_KEPT": "10",
            "FFAAS_CONTROL_PLANE_ID": "cp-east-1",
            "FFAAS_INGEST_CLAIM_IDLE_MS": "60000",
            "FFAAS_CONVERSATION_STREAM_MAX_BYTES": "1_000_000",
            "FFAAS_DEAD_LETTER_MAX_LENGTH": "500",
            "FFAAS_REDIS_TIMEOUT_MS": "750",
        }
    )

    assert settings == Settings(
        redis_url="redis://redis:6380/2",
        redis_prefix="staging",
        data_dir=Path("/var/lib/ffaas"),
        host="0.0.0.0",
        port=3100,
        public_url="https://fn.example.com",
        admin_token="token",
        max_module_bytes=1_000_000,
        deploy_ack_timeout_ms=250,
        log_level="debug",
        data_plane_url="http://data-plane.internal:4000",
        replay_timeout_ms=9000,
        replay_concurrency=3,
        replay_max_batches=5,
        replay_batch_max_runs=200,
        replay_batches_kept=10,
        control_plane_id="cp-east-1",
        ingest_claim_idle_ms=60_000,
        conversation_stream_max_bytes=1_000_000,
        dead_letter_max_length=500,
        redis_timeout_ms=750,
    )
    assert settings.consumer_name == "cp-east-1"
    assert settings.replay_url == "http://data-plane.internal:4000"
    assert settings.database_path == Path("/var/lib/ffaas/control_plane.sqlite3")


def test_public_url_defaults_to_the_data_plane_port() -> None:
    assert Settings.from_environ({"FFAAS_DATA_PLANE_PORT": "4100"}).public_url == "http://127.0.0.1:4100"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FFAAS_CONTROL_PLANE_PORT", "http"),
        ("FFAAS_CONTROL_PLANE_PORT", "70000"),
        ("FFAAS_DATA_PLANE_PORT", "-1"),
        ("FFAAS_MAX_MODULE_BYTES", "big"),
        ("FFAAS_DEPLOY_ACK_TIMEOUT_MS", "-5"),
        ("FFAAS_PUBLIC_URL", "fn.example.com"),
        ("FFAAS_LOG_LEVEL", "loud"),
        ("FFAAS_DATA_PLANE_URL", "data-plane:4000"),
        ("FFAAS_REPLAY_TIMEOUT_MS", "0"),
        ("FFAAS_REPLAY_CONCURRENCY", "0"),
        ("FFAAS_REPLAY_MAX_BATCHES", "many"),
        ("FFAAS_REPLAY_BATCH_MAX_RUNS", "-1"),
        ("FFAAS_REPLAY_BATCHES_KEPT", "0"),
        ("FFAAS_CONVERSATION_STREAM_MAX_BYTES", "1GB"),
        ("FFAAS_CONVERSATION_STREAM_MAX_BYTES", "0"),
        ("FFAAS_DEAD_LETTER_MAX_LENGTH", "none"),
        ("FFAAS_REDIS_TIMEOUT_MS", "2s"),
        ("FFAAS_REDIS_TIMEOUT_MS", "50"),
    ],
)
def test_a_malformed_variable_fails_naming_it(name: str, value: str) -> None:
    with pytest.raises(SettingError, match=name):
        Settings.from_environ({name: value})


# -- secure by default: no open admin API beyond this machine ------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "[2001:db8::1]", "ffaas.example.com"])
def test_a_non_loopback_host_without_a_token_refuses_to_start(host: str) -> None:
    with pytest.raises(SettingError) as refused:
        Settings.from_environ({"FFAAS_CONTROL_PLANE_HOST": host})

    message = str(refused.value)
    for named in (host, "FFAAS_CONTROL_PLANE_HOST", "FFAAS_ADMIN_TOKEN", "FFAAS_ALLOW_INSECURE_ADMIN=1"):
        assert named in message, f"{named!r} not in {message!r}"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_a_loopback_host_needs_no_token(host: str) -> None:
    settings = Settings.from_environ({"FFAAS_CONTROL_PLANE_HOST": host})

    assert (settings.host, settings.admin_token, settings.admin_api_exposed) == (host, "", False)


def test_a_token_opens_any_host() -> None:
    settings = Settings.from_environ({"FFAAS_CONTROL_PLANE_HOST": "0.0.0.0", "FFAAS_ADMIN_TOKEN": "t0ken"})

    assert (settings.admin_token, settings.admin_api_exposed) == ("t0ken", False)


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_the_escape_hatch_starts_an_open_admin_api_and_says_so(value: str) -> None:
    settings = Settings.from_environ(
        {"FFAAS_CONTROL_PLANE_HOST": "0.0.0.0", "FFAAS_ALLOW_INSECURE_ADMIN": value}
    )

    assert settings.allow_insecure_admin and settings.admin_api_exposed


@pytest.mark.parametrize("value", ["0", "false", "no", "off", ""])
def test_the_escape_hatch_switched_off_still_refuses(value: str) -> None:
    with pytest.raises(SettingError, match="FFAAS_ADMIN_TOKEN"):
        Settings.from_environ({"FFAAS_CONTROL_PLANE_HOST": "0.0.0.0", "FFAAS_ALLOW_INSECURE_ADMIN": value})


def test_a_malformed_escape_hatch_is_named() -> None:
    with pytest.raises(SettingError, match="FFAAS_ALLOW_INSECURE_ADMIN must be 1 or 0"):
        Settings.from_environ({"FFAAS_ALLOW_INSECURE_ADMIN": "please"})


def test_the_token_stays_out_of_the_settings_repr() -> None:
    settings = Settings.from_environ({"FFAAS_ADMIN_TOKEN": "do-not-print-me"})

    assert "do-not-print-me" not in repr(settings)
    assert "do-not-print-me" not in str(settings)


def test_the_stream_and_console_settings_are_read() -> None:
    settings = Settings.from_environ(
        {
            "FFAAS_STREAM_HEARTBEAT_MS": "250",
            "FFAAS_STREAM_POLL_MS": "20",
            "FFAAS_STREAM_MAX_CLIENTS": "7",
            "FFAAS_CONSOLE_SESSION_HOURS": "2",
            "FFAAS_CONSOLE_ASSETS_DIR": "/srv/console",
            "FFAAS_TEST_REQUEST_TIMEOUT_MS": "900",
            "FFAAS_TEST_REQUEST_MAX_BYTES": "4096",
        }
    )

    assert (settings.stream_heartbeat_ms, settings.stream_poll_ms, settings.stream_max_clients) == (
        250,
        20,
        7,
    )
    assert (settings.console_session_hours, settings.console_assets_dir) == (2, Path("/srv/console"))
    assert (settings.test_request_timeout_ms, settings.test_request_max_bytes) == (900, 4096)
    assert Settings().stream_heartbeat_ms == 15_000  # "at least every 15 s"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FFAAS_STREAM_HEARTBEAT_MS", "5"),
        ("FFAAS_STREAM_POLL_MS", "0"),
        ("FFAAS_STREAM_MAX_CLIENTS", "none"),
        ("FFAAS_CONSOLE_SESSION_HOURS", "0"),
        ("FFAAS_TEST_REQUEST_TIMEOUT_MS", "soon"),
        ("FFAAS_TEST_REQUEST_MAX_BYTES", "-1"),
    ],
)
def test_a_malformed_stream_or_console_variable_fails_naming_it(name: str, value: str) -> None:
    with pytest.raises(SettingError, match=name):
        Settings.from_environ({name: value})
