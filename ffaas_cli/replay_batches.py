"""`ffaas endpoint replay` and `ffaas processor replay`: replay the last N recorded runs against a
version, follow the batch with a progress bar, then show its report.

- Start: `POST /endpoint/<id>/replay` or `POST /admin/processor/<id>/replay` (202, the batch's
  first report). `--no-wait` prints the batch id alone on stdout (for `$(...)`) and returns.
- Follow: `GET /replay/<batch id>` every `POLL_INTERVAL_S` until its state is no longer
  `running`, a Rich progress bar on stderr showing runs done, differing and not replayable. The
  batch runs on the control plane: Ctrl-C stops following, never the batch, says how to look
  again (`ffaas replay show ID`) and exits `INTERRUPTED` (130, as shells report Ctrl-C).
- Report: `replay_report.render`, or with `--json` the API's last answer (the 202 report with
  `--no-wait`). A batch `interrupted` (its control plane stopped) exits 1 after its report.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ffaas_cli import names, output, replay_report
from ffaas_cli.client import Plane
from ffaas_cli.failures import Failure
from ffaas_cli.output import JsonOption
from ffaas_cli.replay_options import (
    DEFAULT_LAST,
    AllowTruncatedOption,
    CodeOption,
    LastOption,
    LiveOption,
    NoWaitOption,
    OutcomeOption,
    RuntimeOption,
    SinceOption,
    VersionOption,
    described,
    selection_body,
    target_body,
)
from ffaas_cli.session import session

POLL_INTERVAL_S = 0.5
INTERRUPTED = 130


def endpoint_replay(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(metavar="ID", help="The endpoint's id or unique name.")],
    deploy: Annotated[
        str,
        typer.Option("--deploy", metavar="DEPLOY_ID", help="The deploy to replay against, active or not."),
    ],
    last: LastOption = DEFAULT_LAST,
    since: SinceOption = None,
    outcome: OutcomeOption = None,
    allow_truncated: AllowTruncatedOption = False,
    no_wait: NoWaitOption = False,
    json_output: JsonOption = False,
) -> None:
    """Replay the endpoint's last N recorded runs against a deploy; follow, then report what differs."""
    body: dict[str, Any] = {"deploy_id": deploy, **selection_body(last, since, outcome)}
    if allow_truncated:
        body["allow_truncated"] = True
    control = session(ctx).control
    endpoint_id = names.resolve(control, "endpoint", endpoint)
    start(control, f"/endpoint/{endpoint_id}/replay", body, no_wait=no_wait, json_output=json_output)


def processor_replay(
    ctx: typer.Context,
    processor: Annotated[str, typer.Argument(metavar="ID", help="The processor's id or unique name.")],
    version: VersionOption = None,
    code: CodeOption = None,
    runtime: RuntimeOption = None,
    last: LastOption = DEFAULT_LAST,
    since: SinceOption = None,
    outcome: OutcomeOption = None,
    live: LiveOption = False,
    allow_truncated: AllowTruncatedOption = False,
    no_wait: NoWaitOption = False,
    json_output: JsonOption = False,
) -> None:
    """Replay the processor's last N recorded runs against a version or draft code; follow, then report."""
    target = target_body(
        version=version, code=code, runtime=runtime, offered="--version VERSION_ID | --code FILE"
    )
    body: dict[str, Any] = {**target, **selection_body(last, since, outcome)}
    if live:
        body["outbound"] = "live"
    if allow_truncated:
        body["allow_truncated"] = True
    control = session(ctx).control
    processor_id = names.resolve(control, "processor", processor)
    start(control, f"/admin/processor/{processor_id}/replay", body, no_wait=no_wait, json_output=json_output)


def start(control: Plane, path: str, body: dict[str, Any], *, no_wait: bool, json_output: bool) -> None:
    response = control.request("POST", path, json=body)
    report = response.json()
    batch_id = report["id"]
    if no_wait:
        if json_output:
            return output.print_api_json(response)
        output.line(batch_id)
        output.note(
            f"replaying {report['total']} runs in the background; see them: ffaas replay show {batch_id}"
        )
        return
    output.note(
        f"batch {batch_id}: replaying {report['total']} runs of {replay_report.subject_of(report)} against "
        f"{described(report['target'])} (Ctrl-C stops following; the batch goes on)"
    )
    finished = follow(control, report)
    show(control, finished, json_output=json_output)


def follow(control: Plane, report: dict[str, Any]) -> httpx.Response:
    """Poll the batch until it is no longer running, with a progress bar; its last answer.
    Ctrl-C leaves (exit 130), saying how to look again; the batch goes on."""
    batch_id = report["id"]
    progress = Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[differ]} differ, {task.fields[errors]} not replayed"),
        TimeElapsedColumn(),
        console=output.stderr(),
    )
    try:
        with progress:
            task = progress.add_task("batch", total=report["total"], differ=0, errors=0)
            while True:
                response = control.request("GET", f"/replay/{batch_id}")
                report = response.json()
                progress.update(
                    task,
                    total=report["total"],
                    completed=report["done"],
                    differ=report["differ"],
                    errors=report["errors"],
                )
                if report["state"] != "running":
                    return response
                time.sleep(POLL_INTERVAL_S)  # the polling period, not an ordering of events
    except KeyboardInterrupt:
        output.note(
            f"stopped following; batch {batch_id} goes on in the background. "
            f"Look again: ffaas replay show {batch_id}"
        )
        raise typer.Exit(INTERRUPTED) from None


def show(control: Plane, response: httpx.Response, *, json_output: bool) -> None:
    """A report as the API gave it (`--json`) or for people; a batch interrupted fails after it."""
    report = response.json()
    if json_output:
        output.print_api_json(response)
    else:
        output.show(replay_report.render(report, replay_report.read_subject(control, report)))
    if report["state"] == "interrupted":
        raise Failure(
            f"batch {report['id']} was interrupted (its control plane stopped) after {report['done']} of "
            f"{report['total']} runs"
        )
