"""One conversation as a timeline a person can read in a terminal.

A header (what ran: endpoint and deploy, or processor and version; for a replay, the run it
replays and its outbound mode: answered from the record, or live), then every audit item in order with its
offset from the incoming request: the request (method, path, query, headers, body), log lines,
each outbound request and its response (numbered by `inc`), the final response, and a footer
with the outcome, status, duration and, for a failed run, the error and its detail. Long bodies
are cut at `BODY_PREVIEW_CHARS` (the JSON, `--json`, has them whole).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from ffaas_cli.output import duration

BODY_PREVIEW_CHARS = 2000
INDENT = " " * 16
OUTCOME_STYLES = {"completed": "green"}


def render(conversation: dict[str, Any], name: str | None = None) -> RenderableType:
    """`name`: the name of the endpoint or processor that ran, if known."""
    items: list[dict[str, Any]] = conversation.get("audit_items", [])
    start = _moment(items[0]["created_at"]) if items else _moment(conversation["created_at"])
    requests = {item["id"]: item for item in items if item["kind"] == "request"}
    parts: list[RenderableType] = [_header(conversation, name), Text()]
    for item in items:
        parts.append(_item(item, requests, start))
    parts.append(Text())
    parts.append(_footer(conversation))
    return Group(*parts)


def _header(conversation: dict[str, Any], name: str | None) -> Text:
    text = Text.assemble(("conversation ", "bold"), (conversation["id"], "bold"))
    named = f"{name} " if name else ""
    if conversation.get("endpoint_id"):
        text.append(f"\nendpoint {named}{conversation['endpoint_id']}")
        if conversation.get("deploy_id"):
            text.append(f"  deploy {conversation['deploy_id']}")
        if conversation.get("module_hash"):
            text.append(f"  module {conversation['module_hash']}")
    if conversation.get("request_processor_id"):
        text.append(f"\nprocessor {named}{conversation['request_processor_id']}")
        if conversation.get("processor_version_id"):
            text.append(f"  version {conversation['processor_version_id']}")
        elif conversation.get("replay_of"):
            text.append("  a draft (not saved)")
    if conversation.get("replay_of"):
        text.append(
            Text.assemble(
                "\n",
                ("replay of ", "bold"),
                (conversation["replay_of"], "bold"),
                f", outbound {conversation.get('replay_mode')}",
                (f"  (the original: ffaas conversation show {conversation['replay_of']})", "dim"),
            )
        )
    text.append(f"\nstarted {conversation['created_at']}", style="dim")
    return text


def _item(item: dict[str, Any], requests: dict[str, dict[str, Any]], start: datetime) -> RenderableType:
    offset = Text(f"{_offset_ms(item['created_at'], start):>10}  ", style="dim")
    payload = item["payload"]
    kind = item["kind"]
    if kind == "log":
        return Text.assemble(offset, ("log  ", "yellow"), str(payload))
    if kind == "request":
        return _request(offset, item, payload)
    answered = requests.get(item.get("request") or "")
    outbound = answered is not None and answered.get("inc", 0) > 0
    label = f"<- #{answered['inc']} " if outbound and answered is not None else "<- "
    if isinstance(payload, dict) and "error" in payload and "code" not in payload:
        return Text.assemble(offset, (label, "red"), ("no response: ", "red"), str(payload["error"]))
    heading = Text.assemble(
        offset, (label, "bold cyan" if not outbound else "cyan"), (str(payload.get("code")), "bold")
    )
    return _with_details(heading, payload)


def _request(offset: Text, item: dict[str, Any], payload: dict[str, Any]) -> RenderableType:
    inc = item.get("inc", 0)
    target = payload.get("url") or payload.get("path", "/")
    if not payload.get("url") and payload.get("query"):
        target += "?" + payload["query"]
    label = f"-> #{inc} " if inc else "-> "
    heading = Text.assemble(
        offset,
        (label, "bold magenta" if not inc else "magenta"),
        (f"{payload.get('method')} ", "bold"),
        target,
    )
    return _with_details(heading, payload)


def _with_details(heading: Text, payload: dict[str, Any]) -> RenderableType:
    lines: list[Text] = [heading]
    for name, values in (payload.get("headers") or {}).items():
        lines.extend(Text(f"{INDENT}{name}: {value}", style="dim") for value in values)
    body = payload.get("body") or ""
    lines.extend(Text(INDENT + part) for part in body[:BODY_PREVIEW_CHARS].splitlines())
    if len(body) > BODY_PREVIEW_CHARS:
        cut = len(body) - BODY_PREVIEW_CHARS
        lines.append(Text(f"{INDENT}… {cut} more characters (--json shows all)", style="dim"))
    if payload.get("body_truncated"):
        lines.append(
            Text(f"{INDENT}(a body of {payload.get('body_bytes')} bytes, cut when recorded)", style="dim")
        )
    return Text("\n").join(lines)


def _footer(conversation: dict[str, Any]) -> Text:
    outcome = conversation.get("outcome") or "-"
    style = OUTCOME_STYLES.get(outcome, "red")
    text = Text.assemble(
        ("outcome ", "bold"),
        (outcome, f"bold {style}"),
        f"   status {conversation.get('status')}   duration {duration(conversation.get('duration_ms'))}",
    )
    if conversation.get("error"):
        text.append(f"\nerror: {conversation['error']}", style="red")
    if conversation.get("error_detail"):
        text.append(f"\ndetail:\n{conversation['error_detail']}", style="dim")
    return text


def _moment(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def _offset_ms(timestamp: str, start: datetime) -> str:
    return f"+{(_moment(timestamp) - start).total_seconds() * 1000:.1f} ms"
