"""`ffaas replay show | list`: batch replays, looked at after they were started.

`show BATCH_ID` prints the report as it is now (`GET /replay/<id>`: progress so far while it
runs); `--wait` follows a running batch with the progress bar first, as `endpoint replay` does.
`list` shows the newest batches (`GET /replay`, reports without their runs), optionally of one
endpoint or processor (ids or unique names). `--json` prints the API's answer.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ffaas_cli import names, output, replay_batches
from ffaas_cli.conversation import Labels
from ffaas_cli.output import JsonOption
from ffaas_cli.replay_options import described
from ffaas_cli.session import session

MAX_LIST = 200
"""The most `GET /replay` lists at once."""

app = typer.Typer(help="Batch replays: their progress and reports.", no_args_is_help=True)


@app.command()
def show(
    ctx: typer.Context,
    batch_id: Annotated[str, typer.Argument(metavar="BATCH_ID", help="The batch's id (from `replay list`).")],
    wait: Annotated[bool, typer.Option("--wait", help="Follow a running batch until it ends.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Show a batch replay's report (its progress so far, while it runs)."""
    control = session(ctx).control
    response = control.request("GET", f"/replay/{batch_id}")
    if wait and response.json()["state"] == "running":
        response = replay_batches.follow(control, response.json())
    replay_batches.show(control, response, json_output=json_output)


@app.command("list")
def list_batches(
    ctx: typer.Context,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="Only this endpoint's batches (id or name).")
    ] = None,
    processor: Annotated[
        str | None, typer.Option("--processor", help="Only this processor's batches (id or name).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIST, help="How many, newest first.")] = 20,
    json_output: JsonOption = False,
) -> None:
    """List batch replays, newest first."""
    control = session(ctx).control
    params: dict[str, Any] = {"limit": limit}
    if endpoint is not None:
        params["endpoint_id"] = names.resolve(control, "endpoint", endpoint)
    if processor is not None:
        params["processor_id"] = names.resolve(control, "processor", processor)
    response = control.request("GET", "/replay", params=params)
    if json_output:
        return output.print_api_json(response)
    batches = response.json()["batches"]
    if not batches:
        return output.note("no batch replays")
    labels = Labels(control)
    shown = output.table(
        "BATCH", "STATE", "CREATED", "RUNS OF", "AGAINST", "DONE", "SAME", "DIFFER", "FAILED"
    )
    for batch in batches:
        shown.add_row(
            batch["id"],
            batch["state"],
            batch["created_at"],
            labels.of_subject(batch.get("endpoint_id"), batch.get("processor_id")),
            described(batch["target"]),
            f"{batch['done']}/{batch['total']}",
            str(batch["same"]),
            str(batch["differ"]),
            str(batch["errors"]),
        )
    output.show(shown)
    output.note(f"a report: ffaas replay show {batches[0]['id']}")
