"""`ffaas status`: both planes' `GET /status`, side by side.

A plane that cannot be reached is shown as such (and the command exits 1); `--json` prints
`{"control_plane": <its answer>, "data_plane": <its answer>}`, a plane that could not be
reached being `{"error": "<why>"}`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.text import Text

from ffaas_cli import output
from ffaas_cli.client import Plane
from ffaas_cli.failures import REFUSED, Failure
from ffaas_cli.output import JsonOption
from ffaas_cli.session import session


def status(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Show whether both planes answer, and what they say about themselves."""
    found = session(ctx)
    answers = {"control_plane": _status(found.control), "data_plane": _status(found.data)}
    if json_output:
        sys.stdout.write(json.dumps(answers) + "\n")
    else:
        for plane, answer in zip((found.control, found.data), answers.values(), strict=True):
            _show(plane, answer)
    if any("error" in answer for answer in answers.values()):
        raise typer.Exit(REFUSED)


def _status(plane: Plane) -> dict[str, Any]:
    try:
        answer = plane.json("GET", "/status")
    except Failure as exc:
        return {"error": exc.message}
    return answer if isinstance(answer, dict) else {"error": f"unexpected answer {answer!r}"}


def _show(plane: Plane, answer: dict[str, Any]) -> None:
    if "error" in answer:
        output.line(
            Text.assemble((f"{plane.name}  ", "bold"), ("unreachable", "bold red"), f"  {answer['error']}")
        )
        return
    output.line(
        Text.assemble(
            (f"{plane.name}  ", "bold"), (str(answer.get("status")), "bold green"), f"  {plane.base_url}"
        )
    )
    output.show(
        output.fields([(f"  {name}", str(value)) for name, value in answer.items() if name != "status"])
    )
