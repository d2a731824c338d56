"""Conversation records built exactly as a data plane builds them, and their expected JSON."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import redis

from control_plane.state import Services
from shared.conversations import (
    STREAM_FIELD,
    AuditItem,
    ConversationRecord,
    captured_body,
    headers_payload,
    new_id,
    new_item,
)
from shared.keys import Keys
from shared.timestamps import format_timestamp
from tests.control_plane.local_client import LocalTestClient

CAPTURE_CAP = 64 * 1024
T = TypeVar("T")


def endpoint_record(
    *,
    endpoint_id: str | None = None,
    age: timedelta = timedelta(0),
    body: bytes = b'{"hello": "world"}',
) -> ConversationRecord:
    """An endpoint run: incoming request, a stderr log line, the final response."""
    incoming = new_item(
        "request",
        {
            "method": "POST",
            "path": "/",
            "query": "a=1",
            "headers": headers_payload(
                [("Content-Type", "application/json"), ("X-Tag", "1"), ("x-tag", "2")]
            ),
            **captured_body(body, CAPTURE_CAP),
            "version": "HTTP/1.1",
        },
        inc=0,
    )
    log = new_item("log", "handling request")
    response = new_item(
        "response",
        {"code": 200, "headers": {"content-type": ["text/plain"]}, "body": "ok", "version": "HTTP/1.1"},
        request=incoming.id,
    )
    return _record(
        [incoming, log, response],
        age=age,
        endpoint_id=endpoint_id or new_id(),
        deploy_id=new_id(),
        module_hash="0123456789abcdef0123456789abcdef",
    )


def processor_record(*, processor_id: str | None = None, age: timedelta = timedelta(0)) -> ConversationRecord:
    """A processor run with the prelude: incoming request, log, one outbound call, final response."""
    incoming = new_item(
        "request",
        {"method": "GET", "path": "/", "query": "", "headers": {}, "body": "", "version": "HTTP/1.1"},
        inc=0,
    )
    log = new_item("log", '{"relaying":true}')
    outbound = new_item(
        "request",
        {
            "method": "POST",
            "path": "http://127.0.0.1:9/hook",
            "query": "",
            "headers": {},
            **captured_body(b"\xff\x00binary", CAPTURE_CAP),
            "version": "HTTP/1.1",
        },
        inc=1,
    )
    answer = new_item(
        "response",
        {"code": 202, "headers": {}, "body": "accepted", "version": "HTTP/1.1"},
        request=outbound.id,
    )
    final = new_item(
        "response",
        {"code": 200, "headers": {}, "body": "accepted", "version": "HTTP/1.1"},
        request=incoming.id,
    )
    items = [incoming, log, outbound, answer, final]
    return _record(items, age=age, request_processor_id=processor_id or new_id())


def _record(items: list[AuditItem], *, age: timedelta, **owner: str) -> ConversationRecord:
    created = datetime.now(UTC) - age
    return ConversationRecord(
        id=new_id(),
        created_at=format_timestamp(created),
        finished_at=format_timestamp(created + timedelta(milliseconds=3)),
        duration_ms=3.25,
        outcome="completed",
        status=200,
        error=None,
        error_detail=None,
        items=items,
        **owner,  # type: ignore[arg-type]
    )


def publish(client: redis.Redis, keys: Keys, record: ConversationRecord) -> bytes:
    """XADD the record as the data plane does; the entry id."""
    entry_id = client.xadd(keys.conversations, {STREAM_FIELD: record.pack()}, maxlen=10000)
    assert isinstance(entry_id, bytes)
    return entry_id


def create_group(client: redis.Redis, keys: Keys) -> None:
    with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: it exists already
        client.xgroup_create(keys.conversations, keys.ingest_group, id="0", mkstream=True)


def deliver(client: redis.Redis, keys: Keys, consumer: str, *, ack: bool) -> list[bytes]:
    """Deliver every unread entry to `consumer`; acknowledge them if `ack`. Their ids."""
    read = client.xreadgroup(keys.ingest_group, consumer, {keys.conversations: ">"}, count=1000)
    ids = [entry_id for _, entries in read for entry_id, _ in entries]
    if ack and ids:
        client.xack(keys.conversations, keys.ingest_group, *ids)
    return ids


def expected_items(record: ConversationRecord) -> list[dict[str, Any]]:
    """The audit items as the API must show them (the fh-http seed's AuditItem)."""
    shown = []
    for item in record.items:
        item_json: dict[str, Any] = {
            "kind": item.kind,
            "id": item.id,
            "created_at": item.created_at,
            "conversation_id": record.id,
            "payload": item.payload,
        }
        if item.inc is not None:
            item_json["inc"] = item.inc
        if item.request is not None:
            item_json["request"] = item.request
        shown.append(item_json)
    return shown


def expected_conversation(record: ConversationRecord, *, with_items: bool = True) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": record.id,
        "created_at": record.created_at,
        "request_processor_id": record.request_processor_id,
        "endpoint_id": record.endpoint_id,
        "deploy_id": record.deploy_id,
        "module_hash": record.module_hash,
        "processor_version_id": record.processor_version_id,
        "replay_of": record.replay_of,
        "replay_mode": record.replay_mode,
        "finished_at": record.finished_at,
        "duration_ms": record.duration_ms,
        "outcome": record.outcome,
        "status": record.status,
        "error": record.error,
        "error_detail": record.error_detail,
        "audit_items_dropped": record.audit_items_dropped,
    }
    if with_items:
        shown["audit_items"] = expected_items(record)
    return shown


def pending_count(client: redis.Redis, keys: Keys) -> int:
    """Entries delivered to some consumer of the ingest group and not yet acknowledged."""
    summary: dict[str, Any] = client.xpending(keys.conversations, keys.ingest_group)
    return int(summary["pending"])


def eventually(check: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
    """Wait until `check()` holds (for background work with no event to wait on); fail after timeout."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def services_of(client: LocalTestClient) -> Services:
    found: Services = client.app.state.services  # type: ignore[attr-defined]
    return found


def call_in_app(client: LocalTestClient, function: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine function on the started app's event loop (where its services live)."""
    assert client.portal is not None, "the LocalTestClient must be started (used as a context manager)"
    return client.portal.call(function)


def ingest(
    client: LocalTestClient, redis_client: redis.Redis, keys: Keys, *records: ConversationRecord
) -> None:
    """Publish the records and make the control plane store them before going on."""
    for record in records:
        publish(redis_client, keys, record)
    call_in_app(client, services_of(client).ingester.catch_up)
