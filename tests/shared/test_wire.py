"""Wire records between planes of two releases: unknown fields ignored, layouts checked, nothing silent."""

from __future__ import annotations

import msgpack
import pytest

from shared.conversations import AuditItem, ConversationRecord
from shared.events import EndpointRoute, ProcessorRoute, RouteEvent
from shared.wire import UnreadableRecord

RECORD = ConversationRecord(
    id="c1",
    created_at="2024-01-01T00:00:00.000000Z",
    finished_at="2024-01-01T00:00:00.003000Z",
    duration_ms=3.0,
    outcome="completed",
    status=200,
    error=None,
    error_detail=None,
    endpoint_id="e1",
    items=[AuditItem("log", "i1", "2024-01-01T00:00:00.001000Z", {"any": ["json", 1]})],
)


def repacked(packed: bytes, **changes: object) -> bytes:
    fields = msgpack.unpackb(packed)
    fields.update(changes)
    result: bytes = msgpack.packb(fields)
    return result


@pytest.mark.parametrize(
    "record",
    [
        RECORD,
        EndpointRoute("e1", "d1", "h" * 32, {"A": "b"}),
        ProcessorRoute("p1", "name", "ts", "wasm", "h" * 32, "v1"),
        RouteEvent("ev1", processor_id="p1"),
    ],
    ids=lambda record: type(record).__name__,
)
def test_every_record_round_trips_and_ignores_fields_it_does_not_know(record: object) -> None:
    packed = record.pack()  # type: ignore[attr-defined]

    assert type(record).unpack(packed) == record  # type: ignore[attr-defined]
    assert type(record).unpack(repacked(packed, added_by_a_newer_plane={"x": 1})) == record  # type: ignore[attr-defined]


def test_layout_1_is_written_without_a_version_and_read_with_or_without_one() -> None:
    packed = RECORD.pack()

    assert "v" not in msgpack.unpackb(packed)  # planes from before versioning read it
    assert ConversationRecord.unpack(repacked(packed, v=1)) == RECORD


def test_unset_fields_added_later_are_left_out_of_the_record() -> None:
    fields = msgpack.unpackb(RECORD.pack())

    assert not {"processor_version_id", "replay_of", "replay_mode"} & set(fields)
    assert fields["error"] is None  # a field of the first layout stays, even when None


@pytest.mark.parametrize(
    ("packed", "reason"),
    [
        (b"\xc1", "MessagePack data is malformed"),
        (msgpack.packb(["not", "a", "map"]), "Expected `object`, got `array`"),
        (repacked(RECORD.pack(), status="200"), "Expected `int`, got `str` - at `$.status`"),
        (repacked(RECORD.pack(), items=[{"kind": "log"}]), "missing required field `id` - at `$.items[0]`"),
        (repacked(RECORD.pack(), v=2), "ConversationRecord has layout v2, newer than this plane reads (v1)"),
    ],
    ids=["not msgpack", "not a map", "mistyped", "item incomplete", "newer layout"],
)
def test_an_unreadable_record_raises_and_says_why(packed: bytes, reason: str) -> None:
    with pytest.raises(UnreadableRecord) as raised:
        ConversationRecord.unpack(packed)

    assert reason in str(raised.value)
    assert isinstance(raised.value, ValueError)
