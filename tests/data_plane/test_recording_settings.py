"""The data plane's settings for recording runs: parsed once, malformed values stop the start."""

from __future__ import annotations

import pytest

from data_plane.settings import Settings
from shared.settings import SettingError


def test_recording_settings_have_their_documented_defaults() -> None:
    settings = Settings.from_environ({})
    assert (settings.outbox_max_bytes, settings.record_timeout_ms, settings.max_audit_items) == (
        256 << 20,
        250,
        1000,
    )


def test_recording_settings_are_read() -> None:
    settings = Settings.from_environ(
        {
            "FFAAS_OUTBOX_MAX_BYTES": "1000000",
            "FFAAS_RECORD_TIMEOUT_MS": "50",
            "FFAAS_MAX_AUDIT_ITEMS": "2",
            "FFAAS_DATA_DIR": "/srv/ffaas",
            "FFAAS_PLANE_ID": "plane-a:4000",
        }
    )
    assert (settings.outbox_max_bytes, settings.record_timeout_ms, settings.max_audit_items) == (
        1_000_000,
        50,
        2,
    )
    assert str(settings.outbox_dir) == "/srv/ffaas/outbox/plane-a%3A4000"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FFAAS_OUTBOX_MAX_BYTES", "lots", "FFAAS_OUTBOX_MAX_BYTES must be a whole number"),
        ("FFAAS_OUTBOX_MAX_BYTES", "0", "FFAAS_OUTBOX_MAX_BYTES must be at least 1"),
        ("FFAAS_RECORD_TIMEOUT_MS", "0", "FFAAS_RECORD_TIMEOUT_MS must be at least 1"),
        ("FFAAS_MAX_AUDIT_ITEMS", "1", "FFAAS_MAX_AUDIT_ITEMS must be at least 2"),
        ("FFAAS_OUTBOX_MAX_RECORDS", "100000", "FFAAS_OUTBOX_MAX_RECORDS is no longer read"),
    ],
)
def test_malformed_recording_settings_stop_the_start_naming_the_variable(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(SettingError, match=message):
        Settings.from_environ({name: value})
