"""What a command prints: the API's JSON as it is (`--json`), or tables and text for people.

stdout carries the result; stderr carries progress bars, notes and errors, so that
`ffaas ... --json | jq` and `ffaas call ... > body` get only the result. When stdout is not a
terminal, tables are not cut to 80 columns (ids stay whole for `grep` and `awk`).
"""

from __future__ import annotations

import sys
from functools import cache
from typing import Annotated, Any

import httpx
import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

UNBOUNDED_WIDTH = 10_000

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the API's JSON answer exactly as it came, for scripts.")
]


@cache
def stdout() -> Console:
    return _console(sys.stdout)


@cache
def stderr() -> Console:
    return _console(sys.stderr)


def _console(file: Any) -> Console:
    console = Console(file=file, highlight=False)
    if not console.is_terminal:
        console = Console(file=file, highlight=False, width=UNBOUNDED_WIDTH)
    return console


def print_api_json(response: httpx.Response) -> None:
    """The response body exactly as the API sent it, and a newline."""
    text = response.text
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def note(message: str, style: str = "dim") -> None:
    """A line for people on stderr (never part of a command's result)."""
    stderr().print(Text(message, style=style))


def line(message: str | Text = "") -> None:
    stdout().print(message if isinstance(message, Text) else Text(message))


def table(*columns: str) -> Table:
    shown = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in columns:
        shown.add_column(column, no_wrap=True, overflow="fold")
    return shown


def show(renderable: Any) -> None:
    stdout().print(renderable)


def fields(rows: list[tuple[str, str | Text]]) -> Text:
    """Aligned `name  value` lines, for one object."""
    width = max((len(name) for name, _ in rows), default=0)
    return Text("\n").join(
        Text.assemble((name.ljust(width), "bold"), "  ", value if isinstance(value, Text) else Text(value))
        for name, value in rows
    )


def duration(milliseconds: float | None) -> str:
    if milliseconds is None:
        return "-"
    if milliseconds >= 1000:
        return f"{milliseconds / 1000:.2f} s"
    return f"{milliseconds:.1f} ms"
