"""What a replay takes from the original conversation: its incoming request and, for `recorded`
mode, its outbound exchanges, in the shapes of the data plane's replay job (`data_plane/replay_job.py`).

Invariants:
- A body cut when it was recorded (`body_truncated`: longer than FFAAS_MAX_CAPTURED_BODY_BYTES)
  cannot be replayed faithfully: the incoming request's, and in `recorded` mode any outbound
  response's, refuse the replay with 409 naming the setting, unless the caller allows it
  (`allow_truncated`); the cut body is then replayed as it was kept.
- A conversation without a recorded incoming request (impossible for a run a data plane
  recorded) is a 409 too. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control_plane.storage.conversations import Conversation, StoredItem
from shared.errors import Conflict

REQUEST_FIELDS = ("method", "path", "query", "headers", "body", "version")
PROCESSOR_ENTRIES = ("run", "run_with_prelude")


@dataclass(frozen=True)
class RecordedRun:
    request: dict[str, Any]
    """The incoming request: {method, path, query, headers, body, version}."""
    exchanges: list[dict[str, Any]]
    """Outbound requests in order: {method, url, response: {code, headers, body}} or {method, url, error}."""


def recorded_run(
    conversation: Conversation, items: list[StoredItem], *, with_outbound: bool, allow_truncated: bool
) -> RecordedRun:
    incoming = next((item for item in items if item.kind == "request" and item.inc == 0), None)
    if incoming is None or not isinstance(incoming.payload, dict):
        raise Conflict(f"conversation {conversation.id} has no recorded incoming request to replay")
    payload = incoming.payload
    if payload.get("body_truncated") and not allow_truncated:
        raise _cut(f"the incoming request body of conversation {conversation.id}", payload)
    request = {field: payload.get(field) for field in REQUEST_FIELDS}
    request["query"] = request["query"] or ""
    request["body"] = request["body"] or ""
    exchanges = _exchanges(conversation, items, allow_truncated) if with_outbound else []
    return RecordedRun(request, exchanges)


def processor_entry(conversation: Conversation, run: RecordedRun) -> str:
    """`run` or `run_with_prelude`: the entry point the original request came in by."""
    entry = str(run.request.get("path") or "").rstrip("/").rsplit("/", 1)[-1]
    if entry not in PROCESSOR_ENTRIES:
        raise Conflict(
            f"conversation {conversation.id} was not recorded at /processor/<id>/run or /run_with_prelude"
        )
    return entry


def _exchanges(
    conversation: Conversation, items: list[StoredItem], allow_truncated: bool
) -> list[dict[str, Any]]:
    responses = {item.request: item.payload for item in items if item.kind == "response"}
    outbound = sorted(
        (item for item in items if item.kind == "request" and (item.inc or 0) > 0),
        key=lambda item: item.inc or 0,
    )
    exchanges: list[dict[str, Any]] = []
    for item in outbound:
        request = item.payload if isinstance(item.payload, dict) else {}
        method, url = str(request.get("method") or "GET"), str(request.get("url") or "")
        response = responses.get(item.id)
        if not isinstance(response, dict) or "error" in response or "code" not in response:
            reason = response.get("error") if isinstance(response, dict) else None
            exchanges.append(
                {"method": method, "url": url, "error": str(reason or "no response was recorded")}
            )
            continue
        if response.get("body_truncated") and not allow_truncated:
            described = f"the response to outbound request {item.inc} ({method} {url})"
            raise _cut(f"{described} of conversation {conversation.id}", response)
        answer = {
            "code": response["code"],
            "headers": response.get("headers") or {},
            "body": response.get("body") or "",
        }
        exchanges.append({"method": method, "url": url, "response": answer})
    return exchanges


def _cut(described: str, payload: dict[str, Any]) -> Conflict:
    size = payload.get("body_bytes")
    whole = f" of {size} bytes" if isinstance(size, int) else ""
    return Conflict(
        f"{described} was cut when it was recorded (its body{whole} is longer than "
        "FFAAS_MAX_CAPTURED_BODY_BYTES), so a replay cannot send what the original run got; "
        'send "allow_truncated": true to replay it with the body as it was kept'
    )
