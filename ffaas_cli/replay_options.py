"""The options of the replay commands, and the request bodies they make.

A replay's target is exactly one of `--deploy DEPLOY_ID` (an endpoint's deploy, active or not),
`--version VERSION_ID` (a processor version) or `--code FILE` (a draft, saved nowhere; its
language from the extension, `--runtime` only with it); none or two is bad usage (exit 2)
before anything is sent. Which kind fits which run is the API's to say (400, exit 1).

`--since` takes an RFC 3339 time (`2026-01-09T23:45:48Z`) or an age: a whole number and `s`,
`m`, `h` or `d` (`30m`, `2h`, `7d`), turned into the UTC time that long before now.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from ffaas_cli.code_files import Runtime, read_code
from ffaas_cli.failures import UsageFailure

CUT_BODY_SETTING = "FFAAS_MAX_CAPTURED_BODY_BYTES"
"""Named by the API when a run cannot be replayed as recorded because a body was cut."""
DEFAULT_LAST = 50
"""The API's default `limit` of a batch."""
AGE = re.compile(r"(\d+)\s*([smhd])")
AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

DeployOption = Annotated[
    str | None, typer.Option("--deploy", metavar="DEPLOY_ID", help="A deploy of the endpoint, active or not.")
]
VersionOption = Annotated[
    str | None,
    typer.Option(
        "--version", metavar="VERSION_ID", help="A version of the processor (`ffaas processor versions`)."
    ),
]
CodeOption = Annotated[
    Path | None,
    typer.Option(
        "--code",
        metavar="FILE.js|FILE.ts",
        help="Draft code to run instead, saved nowhere; its extension says the language.",
        exists=True,
        dir_okay=False,
    ),
]
RuntimeOption = Annotated[
    Runtime | None,
    typer.Option("--runtime", help="The draft's runtime (default: the processor's); only with --code."),
]
LiveOption = Annotated[
    bool,
    typer.Option(
        "--live",
        help="Really send the outbound requests (default: answer them from the original run's record).",
    ),
]
AllowTruncatedOption = Annotated[
    bool,
    typer.Option(
        "--allow-truncated",
        help="Replay a run whose recorded body was cut (FFAAS_MAX_CAPTURED_BODY_BYTES) with the part kept.",
    ),
]
LastOption = Annotated[
    int, typer.Option("--last", min=1, metavar="N", help="How many recorded runs, the newest (not replays).")
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="TIME",
        help="Only runs started since then: 2026-01-09T23:45:48Z, or an age: 30m, 2h, 7d.",
    ),
]
OutcomeOption = Annotated[
    str | None, typer.Option("--outcome", help="Only runs that ended so: completed, threw, timed_out, ...")
]
NoWaitOption = Annotated[
    bool,
    typer.Option("--no-wait", help="Print the batch id and return; `ffaas replay show ID` shows it later."),
]


def target_body(
    *,
    deploy: str | None = None,
    version: str | None = None,
    code: Path | None = None,
    runtime: Runtime | None = None,
    offered: str = "--deploy DEPLOY_ID | --version VERSION_ID | --code FILE",
) -> dict[str, Any]:
    """The target fields of a replay request, from the options (exactly one of them given);
    `offered` names the options the command has, for the error."""
    given = [
        name for name, value in (("--deploy", deploy), ("--version", version), ("--code", code)) if value
    ]
    if len(given) != 1:
        problem = "none was" if not given else f"{' and '.join(given)} were"
        raise UsageFailure(f"give exactly one target: {offered}; {problem} given")
    if runtime is not None and code is None:
        raise UsageFailure("--runtime goes with --code (a draft); a version or deploy has its own runtime")
    if deploy:
        return {"deploy_id": deploy}
    if version:
        return {"processor_version_id": version}
    assert code is not None
    language, text = read_code(code)
    body: dict[str, Any] = {"code": text, "language": language}
    if runtime is not None:
        body["runtime"] = runtime.value
    return body


def selection_body(last: int, since: str | None, outcome: str | None) -> dict[str, Any]:
    """`limit`, `since` and `outcome` of a batch, the ones given."""
    body: dict[str, Any] = {"limit": last}
    if since is not None:
        body["since"] = parse_since(since)
    if outcome is not None:
        if not outcome.strip():
            raise UsageFailure("--outcome wants an outcome such as completed or threw, got ''")
        body["outcome"] = outcome
    return body


def parse_since(value: str, now: datetime | None = None) -> str:
    """An RFC 3339 time as given, or an age (`2h`) as the UTC time that long before `now`."""
    text = value.strip()
    age = AGE.fullmatch(text)
    if age is not None:
        delta = timedelta(**{AGE_UNITS[age.group(2)]: int(age.group(1))})
        moment = (now or datetime.now(UTC)) - delta
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or "T" not in text.upper():
        raise UsageFailure(
            f"--since wants a time such as 2026-01-09T23:45:48Z or an age such as 30m, 2h, 7d; got {value!r}"
        )
    return text


def described(target: dict[str, Any]) -> str:
    """A batch's or a replay's target for people: `deploy X`, `version X`, or `a draft (ts, v8)`."""
    if target.get("deploy_id"):
        return f"deploy {target['deploy_id']}"
    if target.get("processor_version_id"):
        return f"version {target['processor_version_id']}"
    draft = target.get("draft") or {}
    if draft:
        return f"a draft ({draft.get('language')}, {draft.get('runtime')}), not saved"
    return "a draft, not saved"
