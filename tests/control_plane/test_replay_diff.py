"""The replay diff: bodies (JSON as JSON, text as lines, binary by size) and whole conversations."""

from __future__ import annotations

import json
from typing import Any

from control_plane.body_diff import MAX_CHANGES, MAX_UNIFIED_LINES, body_diff
from control_plane.replay_diff import conversation_diff
from control_plane.storage.conversations import Conversation, StoredItem
from shared.conversations import captured_body, new_id

WHEN = "2024-01-09T23:45:48.562721Z"


def test_json_bodies_are_compared_as_json() -> None:
    original = json.dumps({"id": 1, "tags": ["a", "b"], "meta": {"x": 1, "gone": True}})
    replay = json.dumps({"meta": {"x": 2, "new/key": None}, "tags": ["a", "c", "d"], "id": 1.0})

    diff = body_diff(original, replay)

    assert (diff["differs"], diff["kind"], diff["truncated"]) == (True, "json", False)
    assert diff["changes"] == [
        {"op": "replace", "path": "/tags/1"},
        {"op": "add", "path": "/tags/2"},
        {"op": "replace", "path": "/meta/x"},
        {"op": "remove", "path": "/meta/gone"},
        {"op": "add", "path": "/meta/new~1key"},
    ]
    assert diff["unified"].startswith("--- original\n+++ replay\n@@")
    assert '-    "x": 1' in diff["unified"] and '+    "x": 2' in diff["unified"]


def test_json_that_differs_only_in_spacing_and_key_order_is_the_same() -> None:
    diff = body_diff('{"a": 1, "b": [true, null]}', '{"b":[true,null],"a":1}')

    assert diff == {"differs": False, "kind": "json", "truncated": False}


def test_booleans_are_not_numbers() -> None:
    assert body_diff("[1]", "[true]")["changes"] == [{"op": "replace", "path": "/0"}]


def test_text_bodies_get_a_unified_diff() -> None:
    diff = body_diff("one\ntwo\nthree", "one\n2\nthree")

    assert (diff["differs"], diff["kind"]) == (True, "text")
    assert diff["unified"] == "--- original\n+++ replay\n@@ -1,3 +1,3 @@\n one\n-two\n+2\n three"
    assert body_diff("same", "same") == {"differs": False, "kind": "text", "truncated": False}


def test_binary_bodies_are_compared_by_bytes_and_sizes() -> None:
    original = captured_body(b"\xff\x00\x01", 100)["body"]
    replay = captured_body(b"\xff\x00\x01\x02", 100)["body"]

    diff = body_diff(original, replay)

    assert diff == {
        "differs": True,
        "kind": "binary",
        "truncated": False,
        "original_bytes": 3,
        "replay_bytes": 4,
    }


def test_a_truncated_body_is_compared_as_text_and_says_so() -> None:
    diff = body_diff('{"a": 1', '{"a": 2', truncated=True)

    assert (diff["kind"], diff["truncated"], diff["differs"]) == ("text", True, True)


def test_the_diff_is_bounded() -> None:
    original = json.dumps(list(range(MAX_CHANGES * 2)))
    replay = json.dumps([-1] * (MAX_CHANGES * 2))

    diff = body_diff(original, replay)

    assert len(diff["changes"]) == MAX_CHANGES and diff["changes_truncated"] is True
    lines = diff["unified"].splitlines()
    assert len(lines) == MAX_UNIFIED_LINES + 1
    assert lines[-1].endswith("more line(s) of diff left out")


class Run:
    """Builds a stored conversation item by item, as the data plane records them."""

    def __init__(self, *, status: int = 200, outcome: str = "completed") -> None:
        self.id = new_id()
        self.status, self.outcome = status, outcome
        self.items: list[StoredItem] = []
        self.incoming = self._add("request", {"method": "POST", "path": "/", "body": "in"}, inc=0)
        self._inc = 0

    def _add(self, kind: str, payload: Any, *, inc: int | None = None, request: str | None = None) -> str:
        item = StoredItem(kind, new_id(), WHEN, self.id, payload, inc, request)
        self.items.append(item)
        return item.id

    def log(self, text: str) -> Run:
        self._add("log", text)
        return self

    def outbound(self, url: str, body: str, answer: dict[str, Any]) -> Run:
        self._inc += 1
        request = {"method": "POST", "url": url, "headers": {}, "body": body}
        request_id = self._add("request", request, inc=self._inc)
        self._add("response", answer, request=request_id)
        return self

    def respond(self, body: str, headers: dict[str, list[str]]) -> tuple[Conversation, list[StoredItem]]:
        self._add("response", {"code": self.status, "headers": headers, "body": body}, request=self.incoming)
        conversation = Conversation(
            self.id, WHEN, WHEN, 1.0, self.outcome, self.status, None, None, None, None, None, "p"
        )
        return conversation, self.items


def test_identical_runs_do_not_differ() -> None:
    def run() -> tuple[Conversation, list[StoredItem]]:
        built = Run().log("hi").outbound("http://t/a", "x", {"code": 200, "headers": {}, "body": "ok"})
        return built.respond("done", {"content-type": ["text/plain"]})

    diff = conversation_diff(run(), run())

    assert (diff["differs"], diff["differs_in"]) == (False, [])
    assert diff["outbound"]["requests"][0] == {
        "index": 1,
        "differs": False,
        "changed": [],
        "original": {"method": "POST", "url": "http://t/a", "status": 200},
        "replay": {"method": "POST", "url": "http://t/a", "status": 200},
    }


def test_every_part_that_differs_is_named_and_described() -> None:
    original = (
        Run()
        .log("relaying")
        .outbound("http://t/a", '{"n": 1}', {"code": 200, "headers": {}, "body": "ok"})
        .respond('{"ok": true}', {"content-type": ["application/json"], "x-old": ["1"]})
    )
    replay = (
        Run(status=502, outcome="threw")
        .log("relaying")
        .log("retrying")
        .outbound("http://t/a", '{"n": 2}', {"error": "refused"})
        .outbound("http://t/b", "", {"code": 204, "headers": {}, "body": ""})
        .respond('{"ok": false}', {"content-type": ["application/json; charset=utf-8"], "x-new": ["2"]})
    )

    diff = conversation_diff(original, replay)

    assert diff["differs_in"] == ["status", "outcome", "headers", "body", "logs", "outbound"]
    assert diff["status"] == {"differs": True, "original": 200, "replay": 502}
    assert diff["outcome"] == {"differs": True, "original": "completed", "replay": "threw"}
    assert diff["headers"] == {
        "differs": True,
        "added": {"x-new": ["2"]},
        "removed": {"x-old": ["1"]},
        "changed": {
            "content-type": {"original": ["application/json"], "replay": ["application/json; charset=utf-8"]}
        },
    }
    assert diff["body"]["changes"] == [{"op": "replace", "path": "/ok"}]
    assert (diff["logs"]["original"], diff["logs"]["replay"]) == (1, 2)
    assert diff["logs"]["unified"].endswith(" relaying\n+retrying")
    first, second = diff["outbound"]["requests"]
    assert first["changed"] == ["body", "response"]
    assert first["body"]["changes"] == [{"op": "replace", "path": "/n"}]
    assert first["replay"] == {"method": "POST", "url": "http://t/a", "error": "refused"}
    assert (second["original"], second["replay"]["url"], second["differs"]) == (None, "http://t/b", True)
    assert (diff["outbound"]["original"], diff["outbound"]["replay"]) == (1, 2)
