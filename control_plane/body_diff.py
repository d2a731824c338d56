"""How two recorded bodies differ: JSON compared as JSON, text as lines, binary by size.

A body is given as an audit item holds it: a string (UTF-8 text, or a
`data:application/octet-stream;base64,...` URL for other bytes). The answer's shape:

    {"differs": bool, "kind": "json" | "text" | "binary", "truncated": bool,
     "changes": [{"op": "add" | "remove" | "replace", "path": "<JSON Pointer>"}, ...],  (json)
     "unified": "--- original\\n+++ replay\\n@@ ...",                                    (json, text)
     "original_bytes": n, "replay_bytes": m}                                              (binary)

- `kind` is "json" when both bodies parse as JSON: then they differ only if the values
  differ (key order and whitespace do not count), `changes` lists the JSON Pointers
  (RFC 6901) where they do, and `unified` is the diff of both pretty-printed (sorted keys,
  2-space indent). "binary" when either is not UTF-8; "text" otherwise.
- `changes`, `unified` and sizes appear only when the bodies differ; `truncated` says that
  either body was cut when recorded (FFAAS_MAX_CAPTURED_BODY_BYTES), so only the kept parts
  were compared.
- Bounded: at most `MAX_CHANGES` changes (then `"changes_truncated": true`) and
  `MAX_UNIFIED_LINES` lines of unified diff (then a last line saying how many were left out).
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from shared.conversations import DATA_URL_PREFIX, body_from_captured

MAX_CHANGES = 200
MAX_UNIFIED_LINES = 400
_NOT_JSON = object()


def body_diff(original: str, replay: str, *, truncated: bool = False) -> dict[str, Any]:
    if original.startswith(DATA_URL_PREFIX) or replay.startswith(DATA_URL_PREFIX):
        diff: dict[str, Any] = {"differs": original != replay, "kind": "binary", "truncated": truncated}
        if diff["differs"]:
            diff["original_bytes"] = len(body_from_captured(original))
            diff["replay_bytes"] = len(body_from_captured(replay))
        return diff
    parsed = (_json(original), _json(replay)) if not truncated else (_NOT_JSON, _NOT_JSON)
    if parsed[0] is not _NOT_JSON and parsed[1] is not _NOT_JSON:
        changes: list[dict[str, str]] = []
        _json_changes(parsed[0], parsed[1], "", changes)
        diff = {"differs": bool(changes), "kind": "json", "truncated": truncated}
        if changes:
            diff["changes"] = changes[:MAX_CHANGES]
            if len(changes) > MAX_CHANGES:
                diff["changes_truncated"] = True
            diff["unified"] = unified_diff(_pretty(parsed[0]), _pretty(parsed[1]))
        return diff
    diff = {"differs": original != replay, "kind": "text", "truncated": truncated}
    if diff["differs"]:
        diff["unified"] = unified_diff(original, replay)
    return diff


def unified_diff(original: str, replay: str) -> str:
    """The unified diff of two texts line by line, "--- original" / "+++ replay", bounded."""
    lines = list(
        difflib.unified_diff(
            original.splitlines(), replay.splitlines(), fromfile="original", tofile="replay", lineterm=""
        )
    )
    if len(lines) > MAX_UNIFIED_LINES:
        left_out = len(lines) - MAX_UNIFIED_LINES
        lines = [*lines[:MAX_UNIFIED_LINES], f"... {left_out} more line(s) of diff left out"]
    return "\n".join(lines)


def _json(text: str) -> Any:
    if not text.strip():
        return _NOT_JSON
    try:
        return json.loads(text)
    except ValueError:
        return _NOT_JSON


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _json_changes(original: Any, replay: Any, path: str, changes: list[dict[str, str]]) -> None:
    """Append where `replay` differs from `original`: objects by key, arrays by index."""
    if len(changes) > MAX_CHANGES:
        return
    if isinstance(original, dict) and isinstance(replay, dict):
        for key in original:
            if key not in replay:
                changes.append({"op": "remove", "path": _pointer(path, key)})
            else:
                _json_changes(original[key], replay[key], _pointer(path, key), changes)
        changes.extend({"op": "add", "path": _pointer(path, key)} for key in replay if key not in original)
    elif isinstance(original, list) and isinstance(replay, list):
        for index, (before, after) in enumerate(zip(original, replay, strict=False)):
            _json_changes(before, after, f"{path}/{index}", changes)
        shorter = min(len(original), len(replay))
        op = "remove" if len(original) > len(replay) else "add"
        longer = max(len(original), len(replay))
        changes.extend({"op": op, "path": f"{path}/{index}"} for index in range(shorter, longer))
    elif _values_differ(original, replay):
        changes.append({"op": "replace", "path": path})


def _values_differ(original: Any, replay: Any) -> bool:
    """JSON scalars (and a container against anything else): 1 and 1.0 are equal, true and 1 are not."""
    if isinstance(original, bool) or isinstance(replay, bool):
        return type(original) is not type(replay) or original != replay
    if isinstance(original, int | float) and isinstance(replay, int | float):
        return bool(original != replay)
    return type(original) is not type(replay) or bool(original != replay)


def _pointer(path: str, key: str) -> str:
    return f"{path}/{key.replace('~', '~0').replace('/', '~1')}"
