"""Data-plane settings: the replay token and job limit, the worker processes and their plane ids,
and the limits between guests (with their defaults; a malformed value fails naming the variable)."""

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


GUEST_LIMITS = {
    "FFAAS_MAX_OUTBOUND_REQUESTS": ("max_outbound_requests", 50),
    "FFAAS_MAX_OUTBOUND_IN_FLIGHT_PER_RUN": ("max_outbound_in_flight_per_run", 8),
    "FFAAS_MAX_OUTBOUND_IN_FLIGHT": ("max_outbound_in_flight", 128),
    "FFAAS_MAX_HOPS": ("max_hops", 8),
    "FFAAS_WASM_PROCESSOR_RUNS": ("wasm_processor_runs", 64),
    "FFAAS_INLINE_BUDGET_MS": ("inline_budget_ms", 5),
    "FFAAS_MODULE_CACHE_GRACE_S": ("module_cache_grace_s", 3600),
    "FFAAS_V8_RUNS": ("v8_runs", 32),
    "FFAAS_V8_QUEUE": ("v8_queue", 64),
    "FFAAS_V8_ENGINES": ("v8_engines", 1),
    "FFAAS_V8_ENGINE_RESTART_RUNS": ("v8_engine_restart_runs", 100_000),
}


def test_guest_limits_have_their_defaults_and_are_read_from_the_environment() -> None:
    defaults = Settings.from_environ({})
    assert {name: getattr(defaults, field) for name, (field, _) in GUEST_LIMITS.items()} == {
        name: default for name, (_, default) in GUEST_LIMITS.items()
    }
    chosen = Settings.from_environ({name: "3" for name in GUEST_LIMITS})
    assert {getattr(chosen, field) for field, _ in GUEST_LIMITS.values()} == {3}


@pytest.mark.parametrize("name", sorted(GUEST_LIMITS))
def test_a_malformed_guest_limit_fails_naming_its_variable(name: str) -> None:
    with pytest.raises(SettingError, match=name):
        Settings.from_environ({name: "lots"})


@pytest.mark.parametrize(
    "name",
    [
        "FFAAS_MAX_OUTBOUND_IN_FLIGHT_PER_RUN",
        "FFAAS_MAX_OUTBOUND_IN_FLIGHT",
        "FFAAS_WASM_PROCESSOR_RUNS",
        "FFAAS_V8_RUNS",
        "FFAAS_V8_ENGINES",
        "FFAAS_V8_ENGINE_RESTART_RUNS",
    ],
)
def test_bounds_that_would_stop_every_run_must_be_at_least_one(name: str) -> None:
    with pytest.raises(SettingError, match=f"{name} must be at least 1"):
        Settings.from_environ({name: "0"})


def test_the_redis_timeout_is_read_and_a_malformed_one_named() -> None:
    assert Settings.from_environ({}).redis_timeout_ms == 2000
    assert Settings.from_environ({"FFAAS_REDIS_TIMEOUT_MS": "300"}).redis_timeout_ms == 300
    for value in ("soon", "10"):
        with pytest.raises(SettingError, match="FFAAS_REDIS_TIMEOUT_MS"):
            Settings.from_environ({"FFAAS_REDIS_TIMEOUT_MS": value})


def test_the_plane_id_given_stays_the_base_of_every_workers_id() -> None:
    parsed = Settings.from_environ({"FFAAS_PLANE_ID": "edge-1", "FFAAS_DATA_PLANE_WORKERS": "2"})
    assert (parsed.plane_id, parsed.base_plane_id) == ("edge-1", "edge-1")
    assert parsed.worker_plane_ids == ("edge-1/0", "edge-1/1")
    assert parsed.for_worker(1).for_worker(0).plane_id == "edge-1/0"


def test_the_removed_v8_warm_contexts_setting_stops_the_start_saying_what_replaces_it() -> None:
    with pytest.raises(SettingError, match="FFAAS_V8_WARM_CONTEXTS is no longer read.*FFAAS_V8_RUNS"):
        Settings.from_environ({"FFAAS_V8_WARM_CONTEXTS": "4"})


def test_the_v8_engine_worker_path_is_read() -> None:
    assert str(Settings.from_environ({"FFAAS_V8_ENGINE_WORKER": "/opt/w.js"}).v8_engine_worker) == "/opt/w.js"
    assert Settings.from_environ({}).v8_engine_worker.name == "worker.js"
