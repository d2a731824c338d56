"""Data-plane settings: the replay token and job limit, the worker processes and their plane ids."""

from __future__ import annotations

import os

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


def test_workers_default_to_the_cores_this_process_may_use() -> None:
    assert Settings.from_environ({}).workers == len(os.sched_getaffinity(0))
    assert Settings.from_environ({"FFAAS_DATA_PLANE_WORKERS": "3"}).workers == 3


@pytest.mark.parametrize("value", ["many", "0", "-2"])
def test_a_malformed_worker_count_fails_naming_it(value: str) -> None:
    with pytest.raises(SettingError, match="FFAAS_DATA_PLANE_WORKERS"):
        Settings.from_environ({"FFAAS_DATA_PLANE_WORKERS": value})


def test_each_of_several_workers_is_a_plane_of_its_own_and_one_worker_keeps_the_plane_id() -> None:
    several = Settings.from_environ({"FFAAS_PLANE_ID": "edge-1", "FFAAS_DATA_PLANE_WORKERS": "2"})
    single = Settings.from_environ({"FFAAS_PLANE_ID": "edge-1", "FFAAS_DATA_PLANE_WORKERS": "1"})

    workers = [several.for_worker(index) for index in (0, 1)]
    assert [(worker.plane_id, worker.worker) for worker in workers] == [("edge-1/0", 0), ("edge-1/1", 1)]
    assert (single.for_worker(0).plane_id, single.for_worker(0).worker) == ("edge-1", 0)
    with pytest.raises(ValueError, match="worker index 2"):
        several.for_worker(2)
