"""The conversation timeline the console shows, built from stored items (no HTTP, no browser)."""

from __future__ import annotations

from control_plane.console.timeline import body_view, build_timeline
from control_plane.storage.conversations import Conversation, StoredItem


def conversation(outcome: str = "completed") -> Conversation:
    return Conversation(
        id="c", created_at="2026-01-01T00:00:00.000000Z", finished_at=None, duration_ms=5.0, outcome=outcome,
        status=200, error=None, error_detail=None, endpoint_id=None, deploy_id=None, module_hash=None,
        request_processor_id="p", seq=1,
    )  # fmt: skip


def item(kind: str, item_id: str, at_ms: int, payload: object, **extra: object) -> StoredItem:
    created = f"2026-01-01T00:00:00.{at_ms * 1000:06d}Z"
    return StoredItem(kind, item_id, created, "c", payload, extra.get("inc"), extra.get("request"))  # type: ignore[arg-type]


def test_outbound_requests_are_paired_with_their_responses_in_order() -> None:
    items = [
        item("request", "in", 0, {"method": "POST", "path": "/x", "headers": {"h": ["1", "2"]}}, inc=0),
        item("log", "l", 1, "hello"),
        item("request", "o1", 2, {"method": "GET", "url": "http://t/1", "headers": {}, "body": ""}, inc=1),
        item("request", "o2", 3, {"method": "GET", "url": "http://t/2", "headers": {}, "body": ""}, inc=2),
        item("response", "r2", 7, {"code": 204, "headers": {}, "body": ""}, request="o2"),
        item("response", "r1", 9, {"error": "refused"}, request="o1"),
        item("response", "final", 10, {"code": 200, "headers": {}, "body": "ok"}, request="in"),
    ]  # fmt: skip

    timeline = build_timeline(conversation(), items)

    assert [entry.kind for entry in timeline.entries] == [
        "request",
        "log",
        "exchange",
        "exchange",
        "response",
    ]
    request, log, first, second, final = timeline.entries
    assert request.message is not None and request.message.headers == [("h", "1"), ("h", "2")]
    assert log.text == "hello" and log.at_ms == 1.0
    assert first.answer is not None and first.answer.error == "refused" and first.elapsed_ms == 7.0
    assert second.answer is not None and second.answer.status == 204 and second.elapsed_ms == 4.0
    assert (first.number, second.number) == (1, 2)
    assert final.message is not None and final.message.status == 200 and final.at_ms == 10.0
    assert timeline.limits_hit == []


def test_bodies_are_shown_by_kind() -> None:
    assert body_view({"body": '{"a": [1, 2]}'}).kind == "json"
    assert body_view({"body": '{"a": [1, 2]}'}).value == {"a": [1, 2]}
    assert body_view({"body": "{not json"}).kind == "text"
    binary = body_view({"body": "data:application/octet-stream;base64,/wAB"})
    assert (binary.kind, binary.binary_bytes, binary.hex_preview) == ("binary", 3, "ff 00 01")
    cut = body_view({"body": '{"a": 1', "body_truncated": True, "body_bytes": 70000})
    assert (cut.kind, cut.truncated, cut.total_bytes) == ("text", True, 70000)
    assert body_view({"body": ""}).kind == "empty"


def test_limits_hit_name_their_settings() -> None:
    cut = {"method": "GET", "path": "/", "body": "x", "body_truncated": True, "body_bytes": 9}
    items = [
        item("request", "in", 0, cut, inc=0),
        item("log", "l", 1, "[ffaas] stderr cut at 65536 bytes (FFAAS_MAX_LOG_BYTES)"),
        item("response", "final", 2, {"code": 504, "headers": {}, "body": ""}, request="in"),
    ]  # fmt: skip

    limits = build_timeline(conversation("timed_out"), items).limits_hit

    assert limits[0] == "run time limit (FFAAS_RUN_TIMEOUT_MS)"
    assert "FFAAS_MAX_LOG_BYTES" in limits[1]
    assert limits[2] == "a body was cut at capture: 9 bytes (FFAAS_MAX_CAPTURED_BODY_BYTES)"
