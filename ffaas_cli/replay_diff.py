"""A replay and how it differs from the original run, as a person reads it in a terminal.

From the API's `{"conversation", "diff"}` (README, "The diff"): a header (the new conversation,
what it replayed, against what, outbound mode), the verdict (the same, or the parts that
differ, in the API's order), then each differing part: status and outcome as `before → after`,
headers added (+), removed (-) and changed (~), the body's kind, its changed JSON paths and its
unified diff, the log lines' diff, and each outbound request that differs. Unified diffs are
coloured (- red, + green, @@ cyan) when the output is a terminal that takes colour; the text is
the same either way.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from ffaas_cli.output import duration

LABEL_WIDTH = 10
INDENT = " " * LABEL_WIDTH
DIFF_STYLES = {"+++": "bold", "---": "bold", "@@": "cyan", "+": "green", "-": "red"}


def render(conversation: dict[str, Any], diff: dict[str, Any]) -> RenderableType:
    parts: list[RenderableType] = [_header(conversation), _verdict(diff)]
    details: list[RenderableType] = []
    for part in diff.get("differs_in", []):
        details.extend(_PARTS[part](diff[part]))
    if diff.get("body", {}).get("truncated"):
        details.append(
            Text(
                "a body was cut when recorded (FFAAS_MAX_CAPTURED_BODY_BYTES): "
                "only the kept parts were compared",
                style="yellow",
            )
        )
    if details:
        parts.append(Text())
        parts.extend(details)
    parts.append(Text())
    parts.append(Text(f"the replay in full: ffaas conversation show {conversation['id']}", style="dim"))
    return Group(*parts)


def _header(conversation: dict[str, Any]) -> Text:
    text = Text.assemble(
        ("replay ", "bold"),
        (conversation["id"], "bold"),
        " of ",
        (str(conversation.get("replay_of")), "bold"),
    )
    if conversation.get("endpoint_id"):
        against = f"deploy {conversation.get('deploy_id')} of endpoint {conversation['endpoint_id']}"
    elif conversation.get("processor_version_id"):
        processor_id = conversation.get("request_processor_id")
        against = f"version {conversation['processor_version_id']} of processor {processor_id}"
    else:
        against = f"a draft (not saved) of processor {conversation.get('request_processor_id')}"
    text.append(f"\nagainst {against}, outbound {conversation.get('replay_mode')}")
    text.append(
        f"\nanswered {conversation.get('status')}, {conversation.get('outcome')}, "
        f"in {duration(conversation.get('duration_ms'))}",
        style="dim",
    )
    if conversation.get("error"):
        text.append(f"\nerror: {conversation['error']}", style="red")
    return text


def _verdict(diff: dict[str, Any]) -> Text:
    if not diff.get("differs"):
        return Text(
            "same as the original: status, outcome, headers, body, logs and outbound requests",
            style="bold green",
        )
    return Text.assemble(("differs in ", "bold yellow"), (", ".join(diff["differs_in"]), "bold yellow"))


def _label(name: str, value: str | Text = "") -> Text:
    return Text.assemble((name.ljust(LABEL_WIDTH), "bold"), value)


def _compared(name: str) -> Any:
    def lines(part: dict[str, Any]) -> list[RenderableType]:
        return [_label(name, f"{part.get('original')} → {part.get('replay')}")]

    return lines


def _headers(part: dict[str, Any]) -> list[RenderableType]:
    lines: list[RenderableType] = [_label("headers")]
    for name, values in sorted(part.get("added", {}).items()):
        lines.extend(Text(f"{INDENT}+ {name}: {value}", style="green") for value in values)
    for name, values in sorted(part.get("removed", {}).items()):
        lines.extend(Text(f"{INDENT}- {name}: {value}", style="red") for value in values)
    for name, both in sorted(part.get("changed", {}).items()):
        before, after = ", ".join(both.get("original", [])), ", ".join(both.get("replay", []))
        lines.append(Text(f"{INDENT}~ {name}: {before} → {after}", style="yellow"))
    return lines


def _body(part: dict[str, Any], name: str = "body") -> list[RenderableType]:
    return [_label(name, _body_kind(part)), *body_details(part)]


def _body_kind(part: dict[str, Any]) -> str:
    kind = str(part.get("kind"))
    if kind == "binary":
        return f"binary, {part.get('original_bytes')} → {part.get('replay_bytes')} bytes"
    return kind


def body_details(part: dict[str, Any], indent: str = INDENT) -> list[RenderableType]:
    """A body diff's changed JSON paths and unified diff."""
    lines: list[RenderableType] = []
    changes = part.get("changes") or []
    if changes:
        lines.append(Text(f"{indent}changed paths:", style="dim"))
        lines.extend(Text(f"{indent}  {change['op']:<8} {change['path'] or '/'}") for change in changes)
        if part.get("changes_truncated"):
            lines.append(Text(f"{indent}  … and more (--json shows the API's list)", style="dim"))
    if part.get("unified"):
        lines.append(unified(part["unified"], indent))
    return lines


def unified(text: str, indent: str = INDENT) -> Text:
    """A unified diff, each line styled by its first characters."""
    styled = []
    for line in text.splitlines():
        style = next((style for start, style in DIFF_STYLES.items() if line.startswith(start)), "")
        styled.append(Text(indent + line, style=style))
    return Text("\n").join(styled)


def _logs(part: dict[str, Any]) -> list[RenderableType]:
    lines: list[RenderableType] = [_label("logs", f"{part.get('original')} → {part.get('replay')} lines")]
    if part.get("unified"):
        lines.append(unified(part["unified"]))
    return lines


def _outbound(part: dict[str, Any]) -> list[RenderableType]:
    lines: list[RenderableType] = [
        _label("outbound", f"{part.get('original')} → {part.get('replay')} requests")
    ]
    for request in part.get("requests", []):
        if not request.get("differs"):
            continue
        lines.append(
            Text.assemble(
                (f"{INDENT}#{request.get('index')} ", "bold"),
                _exchange(request.get("original"), "not made by the original"),
                " → ",
                _exchange(request.get("replay"), "not made by the replay"),
            )
        )
        lines.append(Text(f"{INDENT}   changed: {', '.join(request.get('changed', []))}", style="yellow"))
        for key, name in (("body", "request body"), ("response_body", "response body")):
            if request.get(key, {}).get("differs"):
                lines.append(Text(f"{INDENT}   {name}: {_body_kind(request[key])}", style="dim"))
                lines.extend(body_details(request[key], INDENT + "   "))
    return lines


def _exchange(side: dict[str, Any] | None, missing: str) -> Text:
    if side is None:
        return Text(f"({missing})", style="dim")
    answered = side.get("status") if side.get("status") is not None else f"error: {side.get('error')}"
    return Text(f"{side.get('method')} {side.get('url')} = {answered}")


_PARTS = {
    "status": _compared("status"),
    "outcome": _compared("outcome"),
    "headers": _headers,
    "body": _body,
    "logs": _logs,
    "outbound": _outbound,
}
