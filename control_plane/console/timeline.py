"""A conversation as the console shows it: a timeline of what happened, in order. No HTTP here.

- The incoming request (`request`, inc 0), every log line, each outbound request paired
  with its response (by the response's `request` id; a request without one shows as
  unanswered), and the final response (the response to the incoming request).
- Times are milliseconds since the conversation began; an exchange also has its own
  duration (response time - request time).
- Bodies (`BodyView`): JSON text is parsed for a pretty, collapsible view; a
  `data:application/octet-stream;base64,` body is binary, shown by size and a hex
  preview; a cut body says so with its full size. Nothing here escapes anything: the
  templates autoescape every string, whatever a guest put in it.
- Limits hit: what the outcome names, audit items the data plane left out, every cut body
  and log.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from control_plane.storage.conversations import Conversation, StoredItem
from shared.conversations import RunOutcome

BINARY_PREFIX = "data:application/octet-stream;base64,"
HEX_PREVIEW_BYTES = 256
LOG_CUT_MARK = "(FFAAS_MAX_LOG_BYTES)"
OUTCOME_LIMITS: dict[str, str] = {
    RunOutcome.TIMED_OUT: "run time limit (FFAAS_RUN_TIMEOUT_MS)",
    RunOutcome.OUT_OF_MEMORY: "memory limit (FFAAS_MAX_MEMORY_BYTES)",
    RunOutcome.OUTPUT_LIMIT: "response size limit (FFAAS_MAX_RESPONSE_BYTES)",
    RunOutcome.REQUEST_TOO_LARGE: "request body limit (FFAAS_MAX_REQUEST_BYTES)",
}


@dataclass(frozen=True)
class BodyView:
    kind: str
    """"empty", "text", "json" or "binary"."""
    text: str = ""
    value: Any = None
    """The parsed JSON, for kind "json"."""
    binary_bytes: int = 0
    hex_preview: str = ""
    truncated: bool = False
    total_bytes: int | None = None


@dataclass(frozen=True)
class MessageView:
    """A request or a response as recorded: a request line or a status, headers, a body."""

    item_id: str
    at_ms: float
    method: str = ""
    url: str = ""
    query: str = ""
    status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: BodyView = BodyView("empty")
    error: str = ""
    """For an outbound response: why no response came (the request failed)."""


@dataclass(frozen=True)
class Entry:
    kind: str
    """"request" (the incoming one), "log", "exchange" (outbound), "response" (the final one)."""
    at_ms: float
    message: MessageView | None = None
    answer: MessageView | None = None
    """For an exchange: the response, None if none was recorded."""
    elapsed_ms: float | None = None
    text: str = ""
    number: int = 0
    """For an exchange: 1, 2, ... in the order the requests were made."""


@dataclass(frozen=True)
class Timeline:
    entries: list[Entry]
    limits_hit: list[str]
    bodies_cut: bool = False
    """Whether any body was cut at capture (such a run replays only with `allow_truncated`)."""


def build_timeline(conversation: Conversation, items: list[StoredItem]) -> Timeline:
    start = _moment(conversation.created_at)
    responses = {item.request: item for item in items if item.kind == "response" and item.request}
    incoming = next((item for item in items if item.kind == "request" and item.inc == 0), None)
    entries: list[Entry] = []
    limits = [OUTCOME_LIMITS[conversation.outcome]] if conversation.outcome in OUTCOME_LIMITS else []
    if conversation.audit_items_dropped:
        limits.append(
            f"{conversation.audit_items_dropped} audit items left out of the record (FFAAS_MAX_AUDIT_ITEMS)"
        )
    for item in items:
        at = _offset_ms(start, item.created_at)
        if item.kind == "log":
            text = item.payload if isinstance(item.payload, str) else json.dumps(item.payload)
            if text.startswith("[ffaas]") and LOG_CUT_MARK in text:
                limits.append(f"log limit: {text}")
            entries.append(Entry("log", at, text=text))
        elif item.kind == "request" and item is incoming:
            entries.append(Entry("request", at, message=_request(item, at)))
        elif item.kind == "request":
            answered = responses.get(item.id)
            answer = None if answered is None else _response(answered, start)
            elapsed = None if answer is None else round(answer.at_ms - at, 3)
            entries.append(Entry("exchange", at, _request(item, at), answer, elapsed, number=item.inc or 0))
        elif item.kind == "response" and (incoming is None or item.request == incoming.id):
            entries.append(Entry("response", at, message=_response(item, start)))
    bodies_cut = False
    for entry in entries:
        for message in (entry.message, entry.answer):
            if message is not None and message.body.truncated:
                bodies_cut = True
                limits.append(
                    f"a body was cut at capture: {message.body.total_bytes} bytes "
                    "(FFAAS_MAX_CAPTURED_BODY_BYTES)"
                )
    return Timeline(entries, limits, bodies_cut)


def body_view(payload: Any) -> BodyView:
    """How to show the `body` of a request or response payload."""
    if not isinstance(payload, dict):
        return BodyView("empty")
    body = payload.get("body")
    truncated = payload.get("body_truncated") is True
    total = payload.get("body_bytes") if isinstance(payload.get("body_bytes"), int) else None
    if body is None or body == "":
        return BodyView("empty", truncated=truncated, total_bytes=total)
    if not isinstance(body, str):
        return BodyView("json", json.dumps(body, indent=2), body, truncated=truncated, total_bytes=total)
    if body.startswith(BINARY_PREFIX):
        try:
            data = base64.b64decode(body[len(BINARY_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            return BodyView("text", body, truncated=truncated, total_bytes=total)
        preview = data[:HEX_PREVIEW_BYTES].hex(" ")
        return BodyView(
            "binary", binary_bytes=len(data), hex_preview=preview, truncated=truncated, total_bytes=total
        )
    if not truncated and body.lstrip()[:1] in ("{", "["):
        try:
            value = json.loads(body)
        except ValueError:
            pass
        else:
            return BodyView("json", json.dumps(value, indent=2, ensure_ascii=False), value)
    return BodyView("text", body, truncated=truncated, total_bytes=total)


def _request(item: StoredItem, at: float) -> MessageView:
    payload = item.payload if isinstance(item.payload, dict) else {}
    return MessageView(
        item.id,
        at,
        method=str(payload.get("method", "")),
        url=str(payload.get("url") or payload.get("path") or ""),
        query=str(payload.get("query") or ""),
        headers=_headers(payload.get("headers")),
        body=body_view(payload),
    )


def _response(item: StoredItem, start: datetime | None) -> MessageView:
    payload = item.payload if isinstance(item.payload, dict) else {}
    code = payload.get("code")
    return MessageView(
        item.id,
        _offset_ms(start, item.created_at),
        status=code if isinstance(code, int) else None,
        headers=_headers(payload.get("headers")),
        body=body_view(payload),
        error=str(payload.get("error") or ""),
    )


def _headers(headers: Any) -> list[tuple[str, str]]:
    if not isinstance(headers, dict):
        return []
    shown: list[tuple[str, str]] = []
    for name, values in headers.items():
        for value in values if isinstance(values, list) else [values]:
            shown.append((str(name), str(value)))
    return shown


def _moment(timestamp: str) -> datetime | None:
    try:
        return datetime.fromisoformat(timestamp)
    except ValueError:
        return None


def _offset_ms(start: datetime | None, timestamp: str) -> float:
    moment = _moment(timestamp)
    if start is None or moment is None:
        return 0.0
    return round((moment - start).total_seconds() * 1000, 3)
