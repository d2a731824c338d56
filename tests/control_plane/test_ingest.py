"""The conversation stream consumer: records on the Redis stream become conversations in SQLite."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis

from control_plane.app import create_app
from control_plane.settings import Settings
from shared.conversations import STREAM_FIELD, ConversationRecord
from shared.keys import Keys
from tests.conftest import RedisServer
from tests.control_plane.conversation_records import (
    call_in_app,
    endpoint_record,
    eventually,
    expected_conversation,
    pending_count,
    processor_record,
    publish,
    services_of,
)
from tests.control_plane.local_client import LocalTestClient

RFC3339_MICROSECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def test_a_record_becomes_a_conversation_in_the_seed_shape(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    record = endpoint_record()
    publish(redis_client, keys, record)

    response = client.get(f"/conversation/{record.id}")

    assert response.status_code == 200
    conversation = response.json()
    assert conversation == expected_conversation(record)
    assert RFC3339_MICROSECONDS.fullmatch(conversation["created_at"])
    request, log, final = conversation["audit_items"]
    assert set(request) == {"kind", "id", "created_at", "conversation_id", "payload", "inc"}
    assert set(log) == {"kind", "id", "created_at", "conversation_id", "payload"}
    assert set(final) == {"kind", "id", "created_at", "conversation_id", "payload", "request"}
    assert [item["kind"] for item in conversation["audit_items"]] == ["request", "log", "response"]
    assert final["request"] == request["id"]
    assert all(RFC3339_MICROSECONDS.fullmatch(item["created_at"]) for item in conversation["audit_items"])
    assert conversation["request_processor_id"] is None


def test_a_get_right_after_the_xadd_returns_the_complete_conversation(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    for _ in range(20):
        record = processor_record()
        publish(redis_client, keys, record)

        response = client.get(f"/conversation/{record.id}")

        assert response.status_code == 200
        assert response.json() == expected_conversation(record)


def test_catch_up_alone_stores_what_the_stopped_reader_never_read(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    call_in_app(client, services_of(client).ingester.stop_reading)
    for _ in range(20):
        record = endpoint_record()
        publish(redis_client, keys, record)

        response = client.get(f"/conversation/{record.id}/audit_item")

        assert response.status_code == 200
        assert response.json() == expected_conversation(record)["audit_items"]
    assert pending_count(redis_client, keys) == 0


def test_a_record_delivered_twice_is_stored_once(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    record = endpoint_record()
    publish(redis_client, keys, record)
    publish(redis_client, keys, record)
    ingester = services_of(client).ingester

    call_in_app(client, ingester.catch_up)

    assert client.get(f"/conversation/{record.id}").json() == expected_conversation(record)
    listed = client.get("/conversation").json()["conversations"]
    assert [conversation["id"] for conversation in listed] == [record.id]
    assert (ingester.writer.stats.stored, ingester.writer.stats.duplicates) == (1, 1)
    assert pending_count(redis_client, keys) == 0


def test_entries_a_crashed_consumer_left_pending_are_reclaimed(
    settings: Settings, redis_client: redis.Redis, keys: Keys
) -> None:
    redis_client.xgroup_create(keys.conversations, keys.ingest_group, id="0", mkstream=True)
    record = endpoint_record()
    publish(redis_client, keys, record)
    redis_client.xreadgroup(keys.ingest_group, "crashed-1", {keys.conversations: ">"}, count=10)
    assert pending_count(redis_client, keys) == 1  # delivered to a consumer that will never ack

    with LocalTestClient(create_app(replace(settings, ingest_claim_idle_ms=50))) as client:
        # No GET: only the background take-over can store it.
        eventually(lambda: services_of(client).ingester.writer.stats.stored == 1)

        assert services_of(client).ingester.upkeep.stats.claimed == 1
        assert client.get(f"/conversation/{record.id}").json() == expected_conversation(record)
        assert pending_count(redis_client, keys) == 0


def test_an_unreadable_entry_is_parked_with_its_reason_and_ingest_goes_on(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    bad_status = replace(endpoint_record(), status="200")  # type: ignore[arg-type]
    not_msgpack = redis_client.xadd(keys.conversations, {STREAM_FIELD: b"\xc1 not msgpack"})
    no_record = redis_client.xadd(keys.conversations, {b"other": b"field"})
    mistyped = publish(redis_client, keys, bad_status)
    newer = redis_client.xadd(keys.conversations, {STREAM_FIELD: packed_fields(endpoint_record(), v=2)})
    good = endpoint_record()
    publish(redis_client, keys, good)

    response = client.get(f"/conversation/{good.id}")

    assert response.json() == expected_conversation(good)
    assert client.get(f"/conversation/{bad_status.id}").status_code == 404
    letters = {fields[b"source_id"]: fields for _, fields in redis_client.xrange(keys.dead_letters)}
    assert set(letters) == {not_msgpack, no_record, mistyped, newer}
    assert b"MessagePack data is malformed" in letters[not_msgpack][b"reason"]
    assert letters[no_record][b"reason"] == b"the entry has no field 'r'"
    assert b"Expected `int`, got `str` - at `$.status`" in letters[mistyped][b"reason"]
    assert b"layout v2, newer than this plane reads (v1)" in letters[newer][b"reason"]
    assert msgpack.unpackb(letters[no_record][b"entry"]) == {b"other": b"field"}
    assert msgpack.unpackb(letters[mistyped][b"entry"]) == {STREAM_FIELD: bad_status.pack()}
    assert {fields[b"source"] for fields in letters.values()} == {keys.conversations.encode()}
    assert services_of(client).ingester.writer.stats.parked == 4
    assert pending_count(redis_client, keys) == 0
    status = client.get("/status").json()
    assert status["conversation_stream"]["dead_letters"] == 4
    assert status["ingest"]["parked"] == 4


def test_a_record_with_fields_this_plane_does_not_know_is_stored(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    """A newer data plane may add fields to the record and to its items: they are ignored."""
    record = processor_record()
    newer = packed_fields(record, plane_region="eu-west", items_extra={"sequence": 7})
    redis_client.xadd(keys.conversations, {STREAM_FIELD: newer})

    response = client.get(f"/conversation/{record.id}")

    assert response.status_code == 200
    assert response.json() == expected_conversation(record)
    assert services_of(client).ingester.writer.stats.parked == 0


def packed_fields(
    record: ConversationRecord, items_extra: dict[str, Any] | None = None, **extra: Any
) -> bytes:
    """The record as a plane would pack it with `extra` fields (and `items_extra` in every item)."""
    fields = msgpack.unpackb(record.pack())
    fields.update(extra)
    for item in fields["items"]:
        item.update(items_extra or {})
    packed: bytes = msgpack.packb(fields)
    return packed


@pytest.fixture
def own_redis(tmp_path: Path) -> RedisServer:
    """A Redis of this test's own, so stopping it disturbs no other test."""
    server = RedisServer(tmp_path)
    server.start()
    return server


def test_ingest_survives_a_redis_outage(settings: Settings, own_redis: RedisServer) -> None:
    keys = Keys(settings.redis_prefix)
    try:
        with LocalTestClient(create_app(replace(settings, redis_url=own_redis.url))) as client:
            own_redis.stop()
            missing = endpoint_record()
            unavailable = client.get(f"/conversation/{missing.id}")
            own_redis.start()
            writer = redis.Redis.from_url(own_redis.url)
            record = endpoint_record()
            publish(writer, keys, record)

            eventually(lambda: services_of(client).ingester.writer.stats.stored == 1)

            assert unavailable.status_code == 503
            assert unavailable.json()["message"].startswith(f"conversation {missing.id} is not stored yet")
            assert client.get(f"/conversation/{record.id}").json() == expected_conversation(record)
            writer.close()
    finally:
        own_redis.stop()
