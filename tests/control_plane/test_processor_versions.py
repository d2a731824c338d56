"""Processor versions in the control plane: the migration that gives existing processors a first
version, reading a version, and rollback publishing the activated version to Redis."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import msgpack
import redis

from control_plane.app import create_app
from control_plane.settings import Settings
from control_plane.storage.database import MIGRATIONS
from shared.events import ProcessorRoute
from shared.keys import Keys
from tests.control_plane.conftest import subscribed
from tests.control_plane.local_client import LocalTestClient

CODE = "async function main(fh, request) {\n  return 'one';\n}\n"


def create(client: LocalTestClient, code: str = CODE, **fields: str) -> dict[str, Any]:
    body = {"name": "versioned", "language": "js", "runtime": "v8", "code": code, **fields}
    response = client.post("/admin/processor", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def put(client: LocalTestClient, processor_id: str, code: str, **fields: str) -> dict[str, Any]:
    body = {"name": "versioned", "language": "js", "runtime": "v8", "code": code, **fields}
    response = client.put(f"/admin/processor/{processor_id}", json=body)
    assert response.status_code == 200, response.text
    saved: dict[str, Any] = response.json()
    return saved


def test_existing_processors_get_a_first_version_when_the_database_is_migrated(settings: Settings) -> None:
    settings.database_path.parent.mkdir(parents=True)
    connection = sqlite3.connect(settings.database_path)
    for number, script in enumerate(MIGRATIONS[:3], start=1):
        connection.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    connection.execute(
        "INSERT INTO processor_code VALUES ('ab', 'function main(){}', '2024-01-01T00:00:00.000000Z')"
    )
    for name in ("first", "second"):
        connection.execute(
            "INSERT INTO processors (id, name, language, runtime, code, code_hash, created_at, updated_at) "
            "VALUES (?, ?, 'ts', 'wasm', 'function main(){}', 'ab', ?, ?)",
            (str(uuid.uuid4()), name, "2024-01-01T00:00:00.000000Z", "2024-01-02T00:00:00.000000Z"),
        )
    connection.commit()
    connection.close()

    with LocalTestClient(create_app(settings)) as client:
        processors = client.get("/admin/processor").json()
        first_version = client.get(
            f"/admin/processor/{processors[0]['id']}/version/{processors[0]['active_version_id']}"
        )

    assert [processor["name"] for processor in processors] == ["first", "second"]
    for processor in processors:
        [version] = processor["version_history"]
        assert uuid.UUID(version["id"]).version == 4
        assert processor["active_version_id"] == version["id"]
        assert version == {
            "id": version["id"],
            "processor_id": processor["id"],
            "name": processor["name"],
            "language": "ts",
            "runtime": "wasm",
            "code_hash": "ab",
            "created_at": "2024-01-02T00:00:00.000000Z",
        }
    assert processors[0]["active_version_id"] != processors[1]["active_version_id"]
    assert first_version.json()["code"] == "function main(){}"


def test_a_version_is_read_only_through_its_own_processor(client: LocalTestClient) -> None:
    mine, other = create(client), create(client, name="other")

    own = client.get(f"/admin/processor/{mine['id']}/version/{mine['active_version_id']}")
    foreign = client.get(f"/admin/processor/{mine['id']}/version/{other['active_version_id']}")
    unknown_processor = str(uuid.uuid4())
    missing = client.get(f"/admin/processor/{unknown_processor}/version/{mine['active_version_id']}")

    assert own.status_code == 200 and own.json()["code"] == CODE
    assert foreign.status_code == 404
    assert other["active_version_id"] in foreign.json()["message"]
    assert missing.json() == {"code": 404, "message": f"processor {unknown_processor} not found"}


def test_rollback_publishes_the_activated_version_and_walks_back(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    created = create(client)
    second = put(client, created["id"], CODE.replace("one", "two"), runtime="wasm")
    first_id, second_id = created["active_version_id"], second["active_version_id"]

    with subscribed(redis_client, keys) as events:
        rolled = client.post(f"/admin/processor/{created['id']}/rollback")
        event = events.get_message(timeout=5)

    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["active_version_id"] == first_id
    assert (rolled.json()["runtime"], rolled.json()["code"]) == ("v8", CODE)
    assert event is not None
    packed = redis_client.hget(keys.processors, created["id"])
    assert isinstance(packed, bytes)
    route = ProcessorRoute.unpack(packed)
    assert (route.version_id, route.runtime) == (first_id, "v8")
    forward = client.post(f"/admin/processor/{created['id']}/rollback", json={"version_id": second_id})
    assert (forward.json()["active_version_id"], forward.json()["runtime"]) == (second_id, "wasm")
    assert (
        client.post(f"/admin/processor/{created['id']}/rollback", json={"version_id": 7}).status_code == 400
    )
    assert client.post(f"/admin/processor/{created['id']}/rollback", json=[]).status_code == 400


def test_a_processor_route_reader_ignores_unknown_fields_and_reads_routes_from_before_versions() -> None:
    future = msgpack.packb(
        {
            "processor_id": "p",
            "name": "n",
            "language": "js",
            "runtime": "v8",
            "code_hash": "h",
            "version_id": "v",
            "a_later_field": 1,
        }
    )
    before_versions = msgpack.packb(
        {"processor_id": "p", "name": "n", "language": "js", "runtime": "v8", "code_hash": "h"}
    )

    assert ProcessorRoute.unpack(future) == ProcessorRoute("p", "n", "js", "v8", "h", "v")
    assert ProcessorRoute.unpack(before_versions).version_id == ""
