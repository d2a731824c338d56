"""A batch replay's report, as a person reads it: `replay show`, and the end of `endpoint replay`
and `processor replay`.

From the API's report (README, "Batches"): a header (the batch, its state, whose runs, against
what, the selection), the counts (how many replayed, the same, differing and in what, not
replayable), a table of every run (original → replay, with its verdict), and what to do next:
look at one replay, and make the target active (the rollback command) when it is not yet.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from ffaas_cli import output
from ffaas_cli.client import Plane
from ffaas_cli.failures import Failure
from ffaas_cli.replay_options import described

STATE_STYLES = {"running": "yellow", "finished": "green", "interrupted": "red"}


def render(report: dict[str, Any], next_steps: list[str] | None = None) -> RenderableType:
    parts: list[RenderableType] = [header(report), Text(), _counts(report)]
    runs = report.get("runs", [])
    if runs:
        shown = output.table("ORIGINAL", "", "REPLAY", "VERDICT")
        for run in runs:
            shown.add_row(run["original"], "→", run["replay"] or "-", verdict(run))
        parts.extend([Text(), shown])
    steps = (
        [f"one replay in full: ffaas conversation show {_first_replay(runs)}"] if _first_replay(runs) else []
    )
    steps.extend(next_steps or [])
    if steps:
        parts.append(Text("\n".join(steps), style="dim"))
    return Group(*parts)


def header(report: dict[str, Any]) -> Text:
    state = report["state"]
    text = Text.assemble(
        ("batch ", "bold"), (report["id"], "bold"), "  ", (state, f"bold {STATE_STYLES.get(state, '')}")
    )
    text.append(
        f"\n{subject(report)}'s runs against {described(report['target'])}, outbound {report['outbound']}"
    )
    text.append(f"\n{selection(report['selection'])}; started {report['created_at']}", style="dim")
    if report.get("finished_at"):
        text.append(f", ended {report['finished_at']}", style="dim")
    return text


def subject(report: dict[str, Any]) -> str:
    if report.get("endpoint_id"):
        return f"endpoint {report['endpoint_id']}"
    return f"processor {report.get('processor_id')}"


def selection(chosen: dict[str, Any]) -> str:
    text = f"the last {chosen.get('limit')} recorded runs"
    if chosen.get("since"):
        text += f" since {chosen['since']}"
    if chosen.get("outcome"):
        text += f" that ended {chosen['outcome']}"
    return text


def _counts(report: dict[str, Any]) -> Text:
    total, done = report["total"], report["done"]
    if total == 0:
        return Text("no recorded runs matched: nothing to replay", style="yellow")
    progress = "" if done == total else f" ({done} of {total} done so far)"
    text = Text.assemble(("replayed ", "bold"), (f"{report['replayed']} of {total}", "bold"), progress, ": ")
    text.append(f"{report['same']} the same", style="green")
    text.append(", ")
    text.append(f"{report['differ']} differ", style="yellow" if report["differ"] else "")
    differing = [f"{part} {count}" for part, count in report.get("differs_in", {}).items() if count]
    if differing:
        text.append(f" (in {', '.join(differing)})")
    text.append(", ")
    text.append(f"{report['errors']} could not be replayed", style="red" if report["errors"] else "")
    return text


def verdict(run: dict[str, Any]) -> Text:
    if run.get("error"):
        return Text(f"not replayed: {run['error']}", style="red")
    if run.get("replay") is None:
        return Text("waiting", style="dim")
    if run.get("differs"):
        return Text(f"differs: {', '.join(run.get('differs_in', []))}", style="yellow")
    return Text("same", style="green")


def _first_replay(runs: list[dict[str, Any]]) -> str | None:
    """The first run that differs, else the first replayed: the one worth a look."""
    replayed = [run for run in runs if run.get("replay")]
    differing = [run for run in replayed if run.get("differs")]
    chosen = differing or replayed
    return str(chosen[0]["replay"]) if chosen else None


def next_steps(control: Plane, report: dict[str, Any]) -> list[str]:
    """How to make the batch's target active, when it is not already (read now; left out if the
    endpoint or processor cannot be read)."""
    target = report["target"]
    try:
        if report.get("endpoint_id") and target.get("deploy_id"):
            endpoint = control.json("GET", f"/endpoint/{report['endpoint_id']}")
            if endpoint["active_deploy_id"] != target["deploy_id"]:
                return [
                    f"make it active: ffaas endpoint rollback {report['endpoint_id']} {target['deploy_id']}"
                ]
        elif report.get("processor_id") and target.get("processor_version_id"):
            processor = control.json("GET", f"/admin/processor/{report['processor_id']}")
            if processor["active_version_id"] != target["processor_version_id"]:
                return [
                    f"make it active: ffaas processor rollback {report['processor_id']} "
                    f"{target['processor_version_id']}"
                ]
        elif report.get("processor_id") and target.get("draft"):
            return [f"save the draft: ffaas processor update {report['processor_id']} FILE"]
    except Failure:
        pass  # deleted since, or no token: the report stands without the hint
    return []
