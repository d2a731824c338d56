"""Data-plane settings that replays added: the shared admin token and the replay job limit."""

from __future__ import annotations

import pytest

from data_plane.settings import Settings
from shared.replay_auth import replay_authorization, replay_token
from shared.settings import SettingError


def test_replay_settings_are_read_with_their_defaults() -> None:
    parsed = Settings.from_environ({"FFAAS_ADMIN_TOKEN": "t", "FFAAS_MAX_REPLAY_BYTES": "4096"})

    assert (parsed.admin_token, parsed.max_replay_bytes) == ("t", 4096)
    assert (Settings.from_environ({}).admin_token, Settings.from_environ({}).max_replay_bytes) == (
        "",
        32 << 20,
    )


@pytest.mark.parametrize("value", ["lots", "100"])
def test_a_malformed_replay_limit_fails_naming_it(value: str) -> None:
    with pytest.raises(SettingError, match="FFAAS_MAX_REPLAY_BYTES"):
        Settings.from_environ({"FFAAS_MAX_REPLAY_BYTES": value})


def test_the_replay_token_is_derived_not_the_admin_token() -> None:
    token = replay_token("secret")

    assert token != "secret" and len(token) == 64
    assert token == replay_token("secret") != replay_token("other")
    assert replay_authorization("secret") == {"authorization": f"Bearer {token}"}
    assert replay_authorization("") == {}


def test_the_admin_token_stays_out_of_the_settings_repr() -> None:
    settings = Settings.from_environ({"FFAAS_ADMIN_TOKEN": "do-not-print-me"})

    assert settings.admin_token == "do-not-print-me"
    assert "do-not-print-me" not in repr(settings)
