"""The request of a run (`call`, `processor run`) from curl-like options, and how its answer is shown.

- `-d BODY` sends BODY; `-d @FILE` the file's bytes; `-d @-` standard input. With `-d` the
  method defaults to POST, else GET; `-X` chooses any. `-H 'Name: value'` adds a header.
- People see the body on stdout, the status line and `conversation <id>` on stderr (and the
  response headers with `-i`), so `ffaas call x > out` keeps the body alone. `--json` prints one
  object: `{"status", "headers": {name: [values]}, "body", "conversation_id"}`, where `body` is
  the text when it is UTF-8, else `data:application/octet-stream;base64,...` (as conversations
  show bodies).
- A run that answered 400 or more exits 1 after showing its answer (like `curl --fail-with-body`).
  A request that is no run (an unknown endpoint or processor: no FH-Conversation-Id) fails as
  one line, like every refused request.
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import typer

from ffaas_cli import output
from ffaas_cli.client import Plane
from ffaas_cli.failures import REFUSED, Failure, UsageFailure

CONVERSATION_HEADER = "fh-conversation-id"

DataOption = Annotated[
    str | None,
    typer.Option("--data", "-d", help="Request body; @FILE sends a file, @- standard input."),
]
MethodOption = Annotated[
    str | None, typer.Option("--request", "-X", help="Method (default: GET, or POST with -d).")
]
HeaderOption = Annotated[
    list[str] | None, typer.Option("--header", "-H", help="A request header, 'Name: value'; repeatable.")
]
IncludeOption = Annotated[bool, typer.Option("--include", "-i", help="Show the response headers too.")]


@dataclass(frozen=True)
class RunRequest:
    method: str
    headers: list[tuple[str, str]]
    body: bytes | None


def build(data: str | None, method: str | None, headers: list[str] | None) -> RunRequest:
    body = None if data is None else _body(data)
    chosen = (method or ("POST" if body is not None else "GET")).upper()
    if not chosen.isalpha():
        raise UsageFailure(f"-X wants a method such as GET or POST, got {method!r}")
    return RunRequest(chosen, [_header(header) for header in headers or []], body)


def send(plane: Plane, path: str, request: RunRequest) -> httpx.Response:
    return plane.send(request.method, path, headers=request.headers, content=request.body)


def show(plane: Plane, response: httpx.Response, *, as_json: bool, include: bool) -> int:
    """Show the run's answer; the exit status (0, or 1 for a status of 400 or more)."""
    conversation_id = response.headers.get(CONVERSATION_HEADER)
    if conversation_id is None and response.status_code >= 400:
        raise Failure(plane.refusal(response))
    if as_json:
        headers: dict[str, list[str]] = {}
        for name, value in response.headers.multi_items():
            headers.setdefault(name.lower(), []).append(value)
        shown = {
            "status": response.status_code,
            "headers": headers,
            "body": body_text(response.content),
            "conversation_id": conversation_id,
        }
        sys.stdout.write(json.dumps(shown, ensure_ascii=False) + "\n")
    else:
        output.note(f"HTTP {response.status_code} {response.reason_phrase}", style="bold")
        if include:
            for name, value in response.headers.multi_items():
                output.note(f"{name}: {value}")
        sys.stdout.buffer.write(response.content)
        if response.content and not response.content.endswith(b"\n") and sys.stdout.isatty():
            sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()
        if conversation_id is not None:
            output.note(f"conversation {conversation_id}  (ffaas conversation show {conversation_id})")
    return REFUSED if response.status_code >= 400 else 0


def body_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "data:application/octet-stream;base64," + base64.b64encode(data).decode("ascii")


def _body(data: str) -> bytes:
    if not data.startswith("@"):
        return data.encode("utf-8")
    source = data[1:]
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise UsageFailure(f"cannot read {source} for -d: {exc.strerror or exc}") from exc


def _header(header: str) -> tuple[str, str]:
    name, colon, value = header.partition(":")
    if not colon or not name.strip() or any(c.isspace() for c in name.strip()):
        raise UsageFailure(f"-H wants 'Name: value', got {header!r}")
    return name.strip(), value.strip()
