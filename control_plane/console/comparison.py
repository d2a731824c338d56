"""A replay beside the run it replays, as the console's comparison shows it. No HTTP here.

Both runs are read from storage and laid out part by part, original on the left and replay on
the right: status and outcome, the final response's headers and body, the log lines, and the
outbound requests paired by their order. What differs comes from `replay_diff.conversation_diff`,
the very function that makes the `diff` of `POST /conversation/<id>/replay`, so the page shows
exactly what the API answered: each side's headers are marked added, removed or changed, JSON
bodies list the changed JSON Pointers, and every unified diff is split into classed lines.

Nothing here escapes anything: the templates autoescape every string, whatever a guest put in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control_plane.console.timeline import Entry, MessageView, Timeline, build_timeline
from control_plane.replay_diff import conversation_diff
from control_plane.storage.conversations import Conversation, StoredItem

Run = tuple[Conversation, list[StoredItem]]


@dataclass(frozen=True)
class MarkedHeader:
    name: str
    value: str
    mark: str
    """"" (the same on both sides), "added", "removed" or "changed"."""


@dataclass(frozen=True)
class Side:
    """One run as the comparison shows it."""

    conversation: Conversation
    timeline: Timeline
    response: MessageView | None
    headers: list[MarkedHeader]
    logs: list[str]
    exchanges: list[Entry]


@dataclass(frozen=True)
class OutboundPair:
    index: int
    diff: dict[str, Any]
    original: Entry | None
    replay: Entry | None


@dataclass(frozen=True)
class DiffLine:
    kind: str
    """"file" (--- / +++), "hunk" (@@), "add", "remove" or "context"."""
    text: str


@dataclass(frozen=True)
class Comparison:
    original: Side
    replay: Side
    diff: dict[str, Any]
    outbound: list[OutboundPair]


def compare(original: Run, replay: Run) -> Comparison:
    diff = conversation_diff(original, replay)
    headers = diff["headers"]
    before = _side(
        original, {**_marks(headers["removed"], "removed"), **_marks(headers["changed"], "changed")}
    )
    after = _side(replay, {**_marks(headers["added"], "added"), **_marks(headers["changed"], "changed")})
    pairs = [
        OutboundPair(
            request["index"],
            request,
            _at(before.exchanges, request["index"] - 1),
            _at(after.exchanges, request["index"] - 1),
        )
        for request in diff["outbound"]["requests"]
    ]
    return Comparison(before, after, diff, pairs)


def diff_lines(unified: str | None) -> list[DiffLine]:
    """A unified diff's lines, each with what it is (for highlighting)."""
    lines: list[DiffLine] = []
    for line in (unified or "").splitlines():
        if line.startswith(("--- ", "+++ ")) and len(lines) < 2:
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "remove"
        else:
            kind = "context"
        lines.append(DiffLine(kind, line))
    return lines


def what_ran(conversation: Conversation) -> str:
    """ "deploy 1a2b3c4d", "version 1a2b3c4d", or "a draft" (a processor replay of unsaved code)."""
    if conversation.deploy_id:
        return f"deploy {conversation.deploy_id[:8]}"
    if conversation.processor_version_id:
        return f"version {conversation.processor_version_id[:8]}"
    if conversation.request_processor_id and conversation.replay_of:
        return "a draft"
    return "—"


def _side(run: Run, marks: dict[str, str]) -> Side:
    conversation, items = run
    timeline = build_timeline(conversation, items)
    response = next((entry.message for entry in timeline.entries if entry.kind == "response"), None)
    shown = response.headers if response is not None else []
    return Side(
        conversation,
        timeline,
        response,
        [MarkedHeader(name, value, marks.get(name, "")) for name, value in shown],
        [entry.text for entry in timeline.entries if entry.kind == "log"],
        sorted((entry for entry in timeline.entries if entry.kind == "exchange"), key=lambda e: e.number),
    )


def _marks(names: dict[str, Any], mark: str) -> dict[str, str]:
    return {name: mark for name in names}


def _at(entries: list[Entry], index: int) -> Entry | None:
    return entries[index] if 0 <= index < len(entries) else None
