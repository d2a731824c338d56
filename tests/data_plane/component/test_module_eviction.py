"""The data plane lets go of what no route uses any more: superseded compiled modules (memory at
once, disk artifacts after FFAAS_MODULE_CACHE_GRACE_S) and the sources of replaced processor code;
the wasm JS engine's own artifact always stays."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from starlette.testclient import TestClient

from data_plane.app import create_app
from data_plane.settings import Settings
from shared.content_hash import content_hash
from tests.data_plane import guests
from tests.data_plane.component.conftest import Publisher
from tests.data_plane.component.upstreams import wait_for


def artifact_names(settings: Settings) -> set[str]:
    return {path.stem for path in Path(settings.module_cache_dir).rglob("*.cwasm")}


def test_a_superseded_module_leaves_memory_at_once_and_keeps_its_artifact_within_the_grace(
    publisher: Publisher, settings: Settings
) -> None:
    v1, v2 = guests.prints(b"v1"), guests.prints(b"v2")
    endpoint_id = publisher.deploy(v1)
    with TestClient(create_app(settings)) as client:  # default grace: an hour
        assert client.get(f"/{endpoint_id}").text == "v1"
        publisher.deploy(v2, endpoint_id=endpoint_id)
        wait_for(lambda: client.get(f"/{endpoint_id}").text == "v2", what="v2 served")
        wait_for(lambda: client.get("/status").json()["modules_in_memory"] == 1, what="v1 let go of")
    assert artifact_names(settings) == {content_hash(v1), content_hash(v2)}


def test_a_superseded_modules_artifact_is_deleted_after_the_grace_period(
    publisher: Publisher, settings: Settings
) -> None:
    v1, v2 = guests.prints(b"v1"), guests.prints(b"v2")
    endpoint_id = publisher.deploy(v1)
    with TestClient(create_app(replace(settings, module_cache_grace_s=0))) as client:
        assert client.get(f"/{endpoint_id}").text == "v1"
        publisher.deploy(v2, endpoint_id=endpoint_id)
        wait_for(lambda: client.get(f"/{endpoint_id}").text == "v2", what="v2 served")
        wait_for(lambda: client.get("/status").json()["module_artifacts_deleted"] == 1, what="v1 deleted")
        assert client.get("/status").json()["modules_in_memory"] == 1
    assert artifact_names(settings) == {content_hash(v2)}


def test_a_deleted_endpoints_module_goes_and_the_js_engine_artifact_stays(
    publisher: Publisher, settings: Settings
) -> None:
    endpoint_id = publisher.deploy(guests.prints(b"bye"))
    processor_id = publisher.processor("function main(r) { return 'js'; }", runtime="wasm")
    with TestClient(create_app(replace(settings, module_cache_grace_s=0))) as client:
        assert client.get(f"/processor/{processor_id}/run").text == "js"  # the engine is loaded
        event_id = publisher.delete(endpoint_id)
        wait_for(
            lambda: publisher.client.llen(publisher.keys.acks(event_id)) == 1, what="the deletion applied"
        )
        assert client.get("/status").json()["modules_in_memory"] == 1  # the engine's module only
        assert client.get(f"/processor/{processor_id}/run").text == "js"
    [engine] = artifact_names(settings)
    assert engine.startswith("engine-")


def test_the_source_of_replaced_processor_code_is_let_go(publisher: Publisher, settings: Settings) -> None:
    processor_id = publisher.processor("function main(r) { return 'v1'; }")
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/processor/{processor_id}/run").text == "v1"
        publisher.processor("function main(r) { return 'v2'; }", processor_id=processor_id)
        wait_for(lambda: client.get(f"/processor/{processor_id}/run").text == "v2", what="v2 served")
        assert client.get("/status").json()["processor_sources"] == 1
