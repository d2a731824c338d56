"""The console's comparison of a replay with its original, built from stored items (no HTTP, no browser)."""

from __future__ import annotations

from dataclasses import replace

from control_plane.console.comparison import compare, diff_lines, what_ran
from control_plane.storage.conversations import Conversation, StoredItem


def conversation(conversation_id: str, **fields: object) -> Conversation:
    base = Conversation(
        id=conversation_id, created_at="2026-01-01T00:00:00.000000Z", finished_at=None, duration_ms=5.0,
        outcome="completed", status=200, error=None, error_detail=None, endpoint_id=None, deploy_id=None,
        module_hash=None, request_processor_id="p", processor_version_id="v1-aaaaaaaa", seq=1,
    )  # fmt: skip
    return replace(base, **fields)  # type: ignore[arg-type]


def run_items(
    conversation_id: str, headers: dict[str, list[str]], body: str, logs: list[str], urls: list[str]
) -> list[StoredItem]:
    at = "2026-01-01T00:00:00.001000Z"
    items = [StoredItem("request", f"{conversation_id}-in", at, conversation_id, {"method": "POST"}, 0, None)]
    items += [
        StoredItem("log", f"{conversation_id}-l{n}", at, conversation_id, line, None, None)
        for n, line in enumerate(logs)
    ]
    for number, url in enumerate(urls, start=1):
        request_id = f"{conversation_id}-o{number}"
        items.append(
            StoredItem(
                "request", request_id, at, conversation_id, {"method": "GET", "url": url}, number, None
            )
        )
        items.append(
            StoredItem(
                "response",
                f"{request_id}-r",
                at,
                conversation_id,
                {"code": 200, "body": ""},
                None,
                request_id,
            )
        )
    final = {"code": 200, "headers": headers, "body": body}
    items.append(
        StoredItem(
            "response", f"{conversation_id}-out", at, conversation_id, final, None, f"{conversation_id}-in"
        )
    )
    return items  # fmt: skip


def test_each_sides_headers_are_marked_and_outbound_requests_paired_by_order() -> None:
    original = conversation("o")
    replay = conversation("r", replay_of="o", replay_mode="recorded", processor_version_id=None)
    before = run_items("o", {"a": ["1"], "gone": ["x"], "same": ["s"]}, '{"n": 1}', ["one"], ["http://t/1"])
    after = run_items(
        "r", {"a": ["2"], "new": ["y"], "same": ["s"]}, '{"n": 2}', ["one"], ["http://t/1", "http://t/2"]
    )

    shown = compare((original, before), (replay, after))

    assert shown.diff["differs_in"] == ["headers", "body", "outbound"]
    assert [(h.name, h.mark) for h in shown.original.headers] == [
        ("a", "changed"),
        ("gone", "removed"),
        ("same", ""),
    ]
    assert [(h.name, h.mark) for h in shown.replay.headers] == [
        ("a", "changed"),
        ("new", "added"),
        ("same", ""),
    ]
    assert shown.original.logs == shown.replay.logs == ["one"]
    assert [pair.index for pair in shown.outbound] == [1, 2]
    first, second = shown.outbound
    assert first.original is not None and first.replay is not None and not first.diff["differs"]
    assert second.original is None and second.replay is not None
    assert second.replay.message is not None and second.replay.message.url == "http://t/2"
    assert what_ran(original) == "version v1-aaaaa" and what_ran(replay) == "a draft"
    assert what_ran(conversation("e", request_processor_id=None, deploy_id="d" * 36)) == "deploy dddddddd"


def test_unified_diff_lines_are_classified() -> None:
    unified = "--- original\n+++ replay\n@@ -1,3 +1,3 @@\n same\n-gone\n+--- new\n--- old"

    assert [(line.kind, line.text) for line in diff_lines(unified)] == [
        ("file", "--- original"),
        ("file", "+++ replay"),
        ("hunk", "@@ -1,3 +1,3 @@"),
        ("context", " same"),
        ("remove", "-gone"),
        ("add", "+--- new"),
        ("remove", "--- old"),  # a removed line reading "-- old", not a file header
    ]
    assert diff_lines(None) == diff_lines("") == []
