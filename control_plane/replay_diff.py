"""How a replay's conversation differs from the original's: the `diff` of a replay's answer.

    {"differs": bool, "differs_in": ["status", "outcome", "headers", "body", "logs", "outbound"],
     "status":   {"differs", "original": 200, "replay": 500},
     "outcome":  {"differs", "original": "completed", "replay": "threw"},
     "headers":  {"differs", "added": {name: [values]}, "removed": {name: [values]},
                  "changed": {name: {"original": [values], "replay": [values]}}},
     "body":     <body_diff: {"differs", "kind", "truncated", "changes"?, "unified"?, ...}>,
     "logs":     {"differs", "original": <count>, "replay": <count>, "unified"?},
     "outbound": {"differs", "original": <count>, "replay": <count>,
                  "requests": [{"index": 1, "differs", "changed": ["method", "url", "headers",
                                "body", "response"], "original": {"method", "url", "status" | "error"}
                                or null, "replay": the same or null, "body"?: <body_diff of the
                                request bodies>, "response_body"?: <body_diff of the responses>}]}}

`differs_in` lists, in that order, every part whose `differs` is true; `differs` is whether
it is not empty. Status, headers and body are those of the final response as recorded (what
the caller got). Outbound requests are paired by their order (`inc`); a request only one
side made has null on the other. Their response headers are not compared: they carry dates.
Pure functions over stored conversations: no I/O.
"""

from __future__ import annotations

from typing import Any

from control_plane.body_diff import body_diff, unified_diff
from control_plane.storage.conversations import Conversation, StoredItem

PARTS = ("status", "outcome", "headers", "body", "logs", "outbound")
Run = tuple[Conversation, list[StoredItem]]


def conversation_diff(original: Run, replay: Run) -> dict[str, Any]:
    before, after = _Recorded(*original), _Recorded(*replay)
    diff: dict[str, Any] = {
        "status": _compared(before.conversation.status, after.conversation.status),
        "outcome": _compared(before.conversation.outcome, after.conversation.outcome),
        "headers": headers_diff(before.response.get("headers") or {}, after.response.get("headers") or {}),
        "body": _payload_body_diff(before.response, after.response),
        "logs": _logs_diff(before.logs, after.logs),
        "outbound": _outbound_diff(before.outbound, after.outbound),
    }
    differs_in = [part for part in PARTS if diff[part]["differs"]]
    return {"differs": bool(differs_in), "differs_in": differs_in, **diff}


def headers_diff(original: dict[str, list[str]], replay: dict[str, list[str]]) -> dict[str, Any]:
    added = {name: values for name, values in replay.items() if name not in original}
    removed = {name: values for name, values in original.items() if name not in replay}
    changed = {
        name: {"original": values, "replay": replay[name]}
        for name, values in original.items()
        if name in replay and replay[name] != values
    }
    return {
        "differs": bool(added or removed or changed),
        "added": added,
        "removed": removed,
        "changed": changed,
    }


class _Recorded:
    """The parts of one conversation a diff compares."""

    def __init__(self, conversation: Conversation, items: list[StoredItem]) -> None:
        self.conversation = conversation
        incoming = next((item for item in items if item.kind == "request" and item.inc == 0), None)
        responses = {item.request: item.payload for item in items if item.kind == "response"}
        final = responses.get(incoming.id) if incoming is not None else None
        self.response: dict[str, Any] = final if isinstance(final, dict) else {}
        self.logs = [str(item.payload) for item in items if item.kind == "log"]
        self.outbound = [
            (item.payload, responses.get(item.id))
            for item in sorted(
                (item for item in items if item.kind == "request" and (item.inc or 0) > 0),
                key=lambda item: item.inc or 0,
            )
        ]


def _compared(original: Any, replay: Any) -> dict[str, Any]:
    return {"differs": original != replay, "original": original, "replay": replay}


def _payload_body_diff(original: dict[str, Any], replay: dict[str, Any]) -> dict[str, Any]:
    truncated = bool(original.get("body_truncated") or replay.get("body_truncated"))
    return body_diff(str(original.get("body", "")), str(replay.get("body", "")), truncated=truncated)


def _logs_diff(original: list[str], replay: list[str]) -> dict[str, Any]:
    diff: dict[str, Any] = {"differs": original != replay, "original": len(original), "replay": len(replay)}
    if diff["differs"]:
        diff["unified"] = unified_diff("\n".join(original), "\n".join(replay))
    return diff


Exchange = tuple[Any, Any]


def _outbound_diff(original: list[Exchange], replay: list[Exchange]) -> dict[str, Any]:
    requests = [
        _exchange_diff(index + 1, _at(original, index), _at(replay, index))
        for index in range(max(len(original), len(replay)))
    ]
    return {
        "differs": any(request["differs"] for request in requests),
        "original": len(original),
        "replay": len(replay),
        "requests": requests,
    }


def _exchange_diff(index: int, original: Exchange | None, replay: Exchange | None) -> dict[str, Any]:
    diff: dict[str, Any] = {
        "index": index,
        "differs": True,
        "changed": [],
        "original": _summary(original),
        "replay": _summary(replay),
    }
    if original is None or replay is None:
        return diff
    (request_before, response_before), (request_after, response_after) = original, replay
    changed: list[str] = [
        field
        for field in ("method", "url", "headers")
        if request_before.get(field) != request_after.get(field)
    ]
    body = _payload_body_diff(request_before, request_after)
    if body["differs"]:
        changed.append("body")
        diff["body"] = body
    before, after = response_before or {}, response_after or {}
    response_body = _payload_body_diff(before, after)
    if before.get("code") != after.get("code") or before.get("error") != after.get("error"):
        changed.append("response")
    if response_body["differs"]:
        if "response" not in changed:
            changed.append("response")
        diff["response_body"] = response_body
    diff["changed"] = changed
    diff["differs"] = bool(changed)
    return diff


def _summary(exchange: Exchange | None) -> dict[str, Any] | None:
    if exchange is None:
        return None
    request, response = exchange
    shown: dict[str, Any] = {"method": request.get("method"), "url": request.get("url")}
    if isinstance(response, dict) and "error" in response:
        shown["error"] = response["error"]
    else:
        shown["status"] = response.get("code") if isinstance(response, dict) else None
    return shown


def _at(exchanges: list[Exchange], index: int) -> Exchange | None:
    return exchanges[index] if index < len(exchanges) else None
