"""What the control plane shows of how a run was recorded: items a data plane left out of a bounded
record, and runs a data plane still holds in its outbox ("on its way", not 404)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import redis

from shared.conversations import new_id
from shared.keys import Keys
from tests.control_plane.conversation_records import (
    endpoint_record,
    expected_conversation,
    ingest,
    publish,
)
from tests.control_plane.local_client import LocalTestClient


def test_a_bounded_record_shows_how_many_items_were_left_out(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    record = replace(endpoint_record(), audit_items_dropped=1234)
    ingest(client, redis_client, keys, record)

    conversation = client.get(f"/conversation/{record.id}").json()

    assert conversation == expected_conversation(record)
    assert conversation["audit_items_dropped"] == 1234
    listed = client.get("/conversation").json()["conversations"]
    assert [c["audit_items_dropped"] for c in listed if c["id"] == record.id] == [1234]


def test_a_record_without_the_field_shows_none_left_out(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    record = endpoint_record()
    assert b"audit_items_dropped" not in record.pack(), "the common case packs as before"
    ingest(client, redis_client, keys, record)

    assert client.get(f"/conversation/{record.id}").json()["audit_items_dropped"] == 0


@pytest.mark.parametrize("suffix", ["", "/audit_item"])
def test_a_run_held_by_a_data_plane_is_on_its_way(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys, suffix: str
) -> None:
    conversation_id = new_id()
    redis_client.set(keys.held_conversation(conversation_id), "plane-7:4000", ex=60)

    response = client.get(f"/conversation/{conversation_id}{suffix}")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "code": 503,
        "message": f"conversation {conversation_id} is on its way: data plane plane-7:4000 answered the "
        "run while Redis was unavailable and is writing its record from its outbox; retry shortly",
    }


def test_a_held_id_already_on_the_stream_is_found(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    """The key may outlive the record's write for a moment: the read catches up first."""
    record = endpoint_record()
    redis_client.set(keys.held_conversation(record.id), "plane-7:4000", ex=60)
    publish(redis_client, keys, record)

    response = client.get(f"/conversation/{record.id}")

    assert (response.status_code, response.json()) == (200, expected_conversation(record))
