"""GET /conversation/<id>, /conversation/<id>/audit_item and the conversation listing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
import redis

from control_plane.app import create_app
from control_plane.settings import Settings
from shared.conversations import new_id
from shared.keys import Keys
from tests.control_plane.conversation_records import (
    endpoint_record,
    expected_conversation,
    expected_items,
    ingest,
    processor_record,
)
from tests.control_plane.local_client import LocalTestClient

TOKEN = "conversation-admin-token"


@pytest.mark.parametrize("suffix", ["", "/audit_item"])
@pytest.mark.parametrize("conversation_id", [new_id(), "not-a-uuid"])
def test_an_unknown_conversation_is_404(client: LocalTestClient, conversation_id: str, suffix: str) -> None:
    response = client.get(f"/conversation/{conversation_id}{suffix}")

    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": f"conversation {conversation_id} not found"}


def test_audit_items_are_the_conversations_items_oldest_first(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    record = processor_record()
    ingest(client, redis_client, keys, record)

    items = client.get(f"/conversation/{record.id}/audit_item").json()

    assert items == expected_items(record)
    assert items == client.get(f"/conversation/{record.id}").json()["audit_items"]
    assert [(item["kind"], item.get("inc"), item.get("request")) for item in items] == [
        ("request", 0, None),
        ("log", None, None),
        ("request", 1, None),
        ("response", None, items[2]["id"]),
        ("response", None, items[0]["id"]),
    ]
    assert items[2]["payload"]["body"] == "data:application/octet-stream;base64,/wBiaW5hcnk="


def test_a_processor_run_names_its_processor_and_no_endpoint(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    processor_id = new_id()
    record = processor_record(processor_id=processor_id)
    ingest(client, redis_client, keys, record)

    conversation = client.get(f"/conversation/{record.id}").json()

    assert conversation["request_processor_id"] == processor_id
    assert (conversation["endpoint_id"], conversation["deploy_id"], conversation["module_hash"]) == (
        None,
    ) * 3


def test_a_failed_run_keeps_its_error_and_guest_detail(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    record = replace(
        endpoint_record(),
        outcome="trapped",
        status=500,
        error="the guest trapped",
        error_detail="wasm trap: unreachable\n  0: func[3]",
    )
    ingest(client, redis_client, keys, record)

    conversation = client.get(f"/conversation/{record.id}").json()

    assert conversation == expected_conversation(record)
    assert (conversation["outcome"], conversation["status"]) == ("trapped", 500)
    assert conversation["error_detail"] == "wasm trap: unreachable\n  0: func[3]"


def test_the_listing_is_last_stored_first_without_items_and_filters(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    endpoint_id, processor_id = new_id(), new_id()
    first = endpoint_record(endpoint_id=endpoint_id, age=timedelta(minutes=3))
    second = processor_record(processor_id=processor_id, age=timedelta(minutes=2))
    failed = replace(endpoint_record(endpoint_id=endpoint_id, age=timedelta(minutes=1)), outcome="trapped")
    # Created before all the others, stored after them (a data plane's outbox drained late):
    # the listing is in storage order, so it comes first, where a client following it looks.
    late = endpoint_record(age=timedelta(minutes=4))
    ingest(client, redis_client, keys, first, second, failed, late)

    everything = client.get("/conversation").json()
    by_endpoint = client.get("/conversation", params={"endpoint_id": endpoint_id}).json()
    by_processor = client.get("/conversation", params={"processor_id": processor_id}).json()
    by_outcome = client.get("/conversation", params={"outcome": "trapped"}).json()

    assert everything == {
        "conversations": [expected_conversation(r, with_items=False) for r in (late, failed, second, first)],
        "next": None,
    }
    assert [c["id"] for c in by_endpoint["conversations"]] == [failed.id, first.id]
    assert [c["id"] for c in by_processor["conversations"]] == [second.id]
    assert [c["id"] for c in by_outcome["conversations"]] == [failed.id]
    assert client.get("/conversation", params={"endpoint_id": new_id()}).json() == {
        "conversations": [],
        "next": None,
    }


def test_pages_follow_each_other_through_the_cursor(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    endpoint_id = new_id()
    records = [endpoint_record(endpoint_id=endpoint_id, age=timedelta(seconds=age)) for age in range(7)]
    ingest(client, redis_client, keys, *records, endpoint_record())

    seen: list[str] = []
    pages = 0
    params: dict[str, str] = {"endpoint_id": endpoint_id, "limit": "3"}
    while True:
        page = client.get("/conversation", params=params).json()
        pages += 1
        seen.extend(conversation["id"] for conversation in page["conversations"])
        if page["next"] is None:
            break
        params["before"] = page["next"]

    assert seen == [record.id for record in reversed(records)]
    assert pages == 3


@pytest.mark.parametrize("limit", ["0", "501", "-1", "ten", "2.5", ""])
def test_a_bad_limit_is_400_naming_it(client: LocalTestClient, limit: str) -> None:
    response = client.get("/conversation", params={"limit": limit})

    assert response.status_code == 400
    assert response.json() == {
        "code": 400,
        "message": f"limit must be a whole number from 1 to 500, got {limit!r}",
    }


@pytest.mark.parametrize("cursor", ["nonsense!", "bm90IGpzb24", "-1", "1.5", "9" * 19])
def test_a_bad_cursor_is_400(client: LocalTestClient, cursor: str) -> None:
    response = client.get("/conversation", params={"before": cursor})

    assert response.status_code == 400
    assert response.json()["message"] == (
        f"before must be the `next` cursor of a page (a whole number), got {cursor!r}"
    )


def test_an_unknown_listing_parameter_is_400(client: LocalTestClient) -> None:
    response = client.get("/conversation", params={"processor": new_id()})

    assert response.status_code == 400
    assert response.json()["message"].startswith("unknown query parameter 'processor'")


@pytest.fixture
def guarded(settings: Settings) -> Iterator[LocalTestClient]:
    with LocalTestClient(create_app(replace(settings, admin_token=TOKEN))) as client:
        yield client


def test_the_listing_needs_the_admin_token_but_reading_by_id_does_not(
    guarded: LocalTestClient, redis_client: redis.Redis, keys: Keys
) -> None:
    record = endpoint_record()
    ingest(guarded, redis_client, keys, record)

    assert guarded.get("/conversation").status_code == 401
    assert guarded.get("/conversation/").status_code == 401
    listed = guarded.get("/conversation", headers={"authorization": f"Bearer {TOKEN}"})
    assert [c["id"] for c in listed.json()["conversations"]] == [record.id]
    assert guarded.get(f"/conversation/{record.id}").json() == expected_conversation(record)
    assert guarded.get(f"/conversation/{record.id}/audit_item").json() == expected_items(record)
