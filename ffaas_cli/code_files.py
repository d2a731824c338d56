"""Processor code read from a file: its language comes from the extension.

.js .mjs .cjs are JavaScript, .ts .mts .cts TypeScript; anything else is bad usage (the
command line cannot guess, and the control plane would compile it as the wrong language). Used
wherever code is given as a file: `processor create` and `update`, and draft replays
(`conversation replay --code`, `processor replay --code`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from ffaas_cli.failures import Failure, UsageFailure

LANGUAGES = {".js": "js", ".mjs": "js", ".cjs": "js", ".ts": "ts", ".mts": "ts", ".cts": "ts"}


class Runtime(StrEnum):
    v8 = "v8"
    wasm = "wasm"


def read_code(file: Path) -> tuple[str, str]:
    """The language (from the extension) and the text of `file`."""
    language = LANGUAGES.get(file.suffix.lower())
    if language is None:
        raise UsageFailure(
            f"cannot tell the language of {file.name}: name it .js or .ts ({', '.join(LANGUAGES)})"
        )
    try:
        return language, file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise Failure(f"{file} is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    except OSError as exc:
        raise UsageFailure(f"cannot read {file}: {exc.strerror or exc}") from exc
