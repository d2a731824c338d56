"""Retention: the oldest conversations beyond the age and count limits go, with their items."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta

import pytest
import redis

from control_plane.app import create_app
from control_plane.retention import Retention
from control_plane.settings import Settings
from shared.conversations import ConversationRecord
from shared.keys import Keys
from tests.control_plane.conversation_records import (
    call_in_app,
    endpoint_record,
    eventually,
    ingest,
    processor_record,
    services_of,
)
from tests.control_plane.local_client import LocalTestClient


def started(settings: Settings) -> LocalTestClient:
    return LocalTestClient(create_app(settings))


def stored_ids(settings: Settings) -> tuple[set[str], set[str]]:
    """Conversation ids, and conversation ids that still have audit items, straight from SQLite."""
    with sqlite3.connect(settings.database_path) as connection:
        conversations = {row[0] for row in connection.execute("SELECT id FROM conversations")}
        with_items = {
            row[0] for row in connection.execute("SELECT DISTINCT conversation_id FROM audit_items")
        }
    return conversations, with_items


@pytest.fixture
def records() -> list[ConversationRecord]:
    """Five conversations, oldest first: 10 days, 3 days, 2 hours, 1 hour and 1 minute old."""
    ages = [
        timedelta(days=10),
        timedelta(days=3),
        timedelta(hours=2),
        timedelta(hours=1),
        timedelta(minutes=1),
    ]
    return [processor_record(age=age) if n % 2 else endpoint_record(age=age) for n, age in enumerate(ages)]


def test_only_the_newest_max_conversations_stay(
    settings: Settings, redis_client: redis.Redis, keys: Keys, records: list[ConversationRecord]
) -> None:
    limited = replace(settings, conversation_retention_hours=0, max_conversations=3)
    with started(limited) as client:
        ingest(client, redis_client, keys, *records)

        deleted = call_in_app(client, services_of(client).retention.run_once)

        assert deleted == 2
        kept = {record.id for record in records[2:]}
        assert stored_ids(limited) == (kept, kept)
        assert client.get(f"/conversation/{records[0].id}").status_code == 404
        assert client.get(f"/conversation/{records[2].id}").status_code == 200


def test_conversations_older_than_the_retention_go(
    settings: Settings, redis_client: redis.Redis, keys: Keys, records: list[ConversationRecord]
) -> None:
    limited = replace(settings, conversation_retention_hours=48, max_conversations=0)
    with started(limited) as client:
        ingest(client, redis_client, keys, *records)

        deleted = call_in_app(client, services_of(client).retention.run_once)

        assert deleted == 2
        kept = {record.id for record in records[2:]}
        assert stored_ids(limited) == (kept, kept)


def test_deletion_runs_in_batches_until_both_limits_hold(
    settings: Settings, redis_client: redis.Redis, keys: Keys, records: list[ConversationRecord]
) -> None:
    with started(settings) as client:
        ingest(client, redis_client, keys, *records)
        retention = Retention(
            services_of(client).db, retention_hours=1, max_conversations=1, interval_s=60, batch=1
        )

        deleted = call_in_app(client, retention.run_once)

        assert deleted == 4
        assert stored_ids(settings) == ({records[-1].id}, {records[-1].id})


def test_zero_limits_keep_everything(
    settings: Settings, redis_client: redis.Redis, keys: Keys, records: list[ConversationRecord]
) -> None:
    unlimited = replace(settings, conversation_retention_hours=0, max_conversations=0)
    with started(unlimited) as client:
        ingest(client, redis_client, keys, *records)

        deleted = call_in_app(client, services_of(client).retention.run_once)

        assert deleted == 0
        assert len(stored_ids(unlimited)[0]) == 5


def test_retention_runs_at_start(
    settings: Settings, redis_client: redis.Redis, keys: Keys, records: list[ConversationRecord]
) -> None:
    with started(settings) as client:
        ingest(client, redis_client, keys, *records)

    with started(replace(settings, max_conversations=2)) as client:
        eventually(lambda: len(client.get("/conversation").json()["conversations"]) == 2)
        remaining = client.get("/conversation").json()["conversations"]

    assert [conversation["id"] for conversation in remaining] == [records[4].id, records[3].id]


def test_the_retention_and_ingest_settings_are_read() -> None:
    settings = Settings.from_environ(
        {
            "FFAAS_CONVERSATION_RETENTION_HOURS": "24",
            "FFAAS_MAX_CONVERSATIONS": "1_000",
            "FFAAS_RETENTION_INTERVAL_S": "5",
            "FFAAS_INGEST_CLAIM_IDLE_MS": "1000",
        }
    )
    defaults = Settings.from_environ({})

    assert (settings.conversation_retention_hours, settings.max_conversations) == (24, 1000)
    assert (settings.retention_interval_s, settings.ingest_claim_idle_ms) == (5, 1000)
    assert (defaults.conversation_retention_hours, defaults.max_conversations) == (168, 1_000_000)
    assert (defaults.retention_interval_s, defaults.ingest_claim_idle_ms) == (60, 30_000)
