"""`ffaas processor versions | version | rollback`: a processor's immutable versions.

Every create and update stores a version; one is active (what data planes run).
- `versions ID`: the history, oldest first, the active one marked `*` (from
  `GET /admin/processor/<id>`); `--json` prints `{"active_version_id", "version_history"}` as
  the API gave them, since the API has no route of its own for the list.
- `version ID VERSION_ID`: that version and its code (`GET .../version/<vid>`).
- `rollback ID [VERSION_ID]`: make an older version active again (`POST .../rollback`); without
  VERSION_ID, the one before the active one. The history does not change.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.syntax import Syntax
from rich.table import Table

from ffaas_cli import names, output
from ffaas_cli.output import JsonOption
from ffaas_cli.session import session

ProcessorArgument = Annotated[str, typer.Argument(metavar="ID", help="The processor's id or unique name.")]


def versions(ctx: typer.Context, processor: ProcessorArgument, json_output: JsonOption = False) -> None:
    """List a processor's versions, oldest first; * marks the active one."""
    control = session(ctx).control
    found = control.json("GET", f"/admin/processor/{names.resolve(control, 'processor', processor)}")
    if json_output:
        chosen = {key: found[key] for key in ("active_version_id", "version_history")}
        sys.stdout.write(json.dumps(chosen) + "\n")
        return
    output.line(f"processor {found['name']} {found['id']}")
    output.show(versions_table(found))
    output.note(f"a version's code: ffaas processor version {found['id']} VERSION_ID")


def version(
    ctx: typer.Context,
    processor: ProcessorArgument,
    version_id: Annotated[str, typer.Argument(metavar="VERSION_ID", help="One of its versions.")],
    json_output: JsonOption = False,
) -> None:
    """Show one version of a processor and its code."""
    control = session(ctx).control
    processor_id = names.resolve(control, "processor", processor)
    response = control.request("GET", f"/admin/processor/{processor_id}/version/{version_id}")
    if json_output:
        return output.print_api_json(response)
    shown = response.json()
    output.show(
        output.fields(
            [
                ("version", shown["id"]),
                ("processor", f"{shown['name']} {shown['processor_id']}"),
                ("language", shown["language"]),
                ("runtime", shown["runtime"]),
                ("created", shown["created_at"]),
                ("code hash", shown["code_hash"]),
            ]
        )
    )
    output.line()
    output.show(code_view(shown["code"], shown["language"]))


def rollback(
    ctx: typer.Context,
    processor: ProcessorArgument,
    version_id: Annotated[
        str | None,
        typer.Argument(
            metavar="[VERSION_ID]", help="The version to make active; default: the one before the active one."
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Make an older version active again (the history does not change)."""
    control = session(ctx).control
    processor_id = names.resolve(control, "processor", processor)
    body = None if version_id is None else {"version_id": version_id}
    response = control.request("POST", f"/admin/processor/{processor_id}/rollback", json=body)
    if json_output:
        return output.print_api_json(response)
    rolled = response.json()
    output.line(f"processor {processor_id} now runs version {rolled['active_version_id']}")


def versions_table(processor: dict[str, Any]) -> Table:
    shown = output.table("", "VERSION", "NAME", "LANGUAGE", "RUNTIME", "CREATED")
    for each in processor.get("version_history") or []:
        active = each["id"] == processor.get("active_version_id")
        shown.add_row(
            "*" if active else "",
            each["id"],
            each["name"],
            each["language"],
            each["runtime"],
            each["created_at"],
        )
    return shown


def code_view(code: str, language: str) -> Syntax:
    lexer = "typescript" if language == "ts" else "javascript"
    return Syntax(code, lexer, line_numbers=True, theme="ansi_dark")
