"""A batch replay's report, as a person reads it: `replay show`, and the end of `endpoint replay`
and `processor replay`.

From the API's report (README, "Batches"): a header (the batch, its state, whose runs, against
what, the selection), the counts (how many replayed, the same, differing and in what, not
replayable), a table of every run (original → replay, with its verdict), and what to do next:
look at one replay, replay runs whose body was cut with --allow-truncated, and make the target
active (the rollback command) when it is not yet.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from ffaas_cli import output
from ffaas_cli.client import Plane
from ffaas_cli.failures import Failure
from ffaas_cli.replay_options import CUT_BODY_SETTING, described

STATE_STYLES = {"running": "yellow", "finished": "green", "interrupted": "red"}


def render(report: dict[str, Any], subject: dict[str, Any] | None = None) -> RenderableType:
    """`subject`: the endpoint or processor whose runs were replayed, as read now (for its name, and
    whether the target is active yet); None when it could not be read."""
    parts: list[RenderableType] = [header(report, subject), Text(), _counts(report)]
    runs = report.get("runs", [])
    if runs:
        shown = output.table("ORIGINAL", "", "REPLAY", "VERDICT")
        for run in runs:
            shown.add_row(run["original"], "→", run["replay"] or "-", verdict(run))
        parts.extend([Text(), shown])
    first = _first_replay(runs)
    steps = [f"one replay in full: ffaas conversation show {first}"] if first else []
    if any(CUT_BODY_SETTING in (run.get("error") or "") for run in runs):
        steps.append("runs whose recorded body was cut: --allow-truncated replays them with the part kept")
    steps.extend(next_steps(report, subject))
    if steps:
        parts.append(Text("\n".join(steps), style="dim"))
    return Group(*parts)


def header(report: dict[str, Any], subject: dict[str, Any] | None = None) -> Text:
    state = report["state"]
    text = Text.assemble(
        ("batch ", "bold"), (report["id"], "bold"), "  ", (state, f"bold {STATE_STYLES.get(state, '')}")
    )
    named = f" {subject['name']}" if subject else ""
    text.append(
        f"\nruns of {subject_of(report, named)} against {described(report['target'])}, "
        f"outbound {report['outbound']}"
    )
    text.append(f"\n{selection(report['selection'])}; started {report['created_at']}", style="dim")
    if report.get("finished_at"):
        text.append(f", ended {report['finished_at']}", style="dim")
    return text


def subject_of(report: dict[str, Any], named: str = "") -> str:
    """`endpoint <id>` or `processor <id>`, with `named` (" <name>") between when given."""
    if report.get("endpoint_id"):
        return f"endpoint{named} {report['endpoint_id']}"
    return f"processor{named} {report.get('processor_id')}"


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


def read_subject(control: Plane, report: dict[str, Any]) -> dict[str, Any] | None:
    """The endpoint or processor whose runs a batch replays, as it is now; None if it cannot be read
    (deleted since, or no token): the report stands without its name and hints."""
    if report.get("endpoint_id"):
        path = f"/endpoint/{report['endpoint_id']}"
    else:
        path = f"/admin/processor/{report.get('processor_id')}"
    try:
        found: dict[str, Any] = control.json("GET", path)
    except Failure:
        return None
    return found


def next_steps(report: dict[str, Any], subject: dict[str, Any] | None) -> list[str]:
    """How to make the batch's target active, when it is not already."""
    target = report["target"]
    if subject is None:
        return []
    if target.get("deploy_id") and subject.get("active_deploy_id") != target["deploy_id"]:
        return [f"make it active: ffaas endpoint rollback {subject['id']} {target['deploy_id']}"]
    version = target.get("processor_version_id")
    if version and subject.get("active_version_id") != version:
        return [f"make it active: ffaas processor rollback {subject['id']} {version}"]
    if target.get("draft"):
        return [f"save the draft: ffaas processor update {subject['id']} FILE"]
    return []
