"""`ffaas conversation replay ID (--deploy X | --version X | --code FILE [--runtime R]) [--live]
[--allow-truncated]`: run one recorded run again against another version, and show what changed.

`POST /conversation/<id>/replay`; people see `replay_diff.render`, `--json` prints the API's
`{"conversation", "diff"}`. The replay waits for a data plane (up to FFAAS_REPLAY_TIMEOUT_MS on
the control plane, 60 s by default), so this request may take longer than others: it is given
`REPLAY_READ_TIMEOUT_S`. A run whose recorded body was cut is refused by the API (409); the
error line then also says which option replays it anyway.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ffaas_cli import output, replay_diff
from ffaas_cli.failures import Failure
from ffaas_cli.replay_options import (
    CUT_BODY_SETTING,
    AllowTruncatedOption,
    CodeOption,
    DeployOption,
    LiveOption,
    RuntimeOption,
    VersionOption,
    target_body,
)
from ffaas_cli.session import session

REPLAY_READ_TIMEOUT_S = 120.0
"""Beyond the control plane's default FFAAS_REPLAY_TIMEOUT_MS (60 s), so that its own answer (a 503
naming the setting) arrives rather than a timeout here."""


def replay(
    ctx: typer.Context,
    conversation_id: Annotated[str, typer.Argument(metavar="ID", help="The conversation to replay.")],
    deploy: DeployOption = None,
    version: VersionOption = None,
    code: CodeOption = None,
    runtime: RuntimeOption = None,
    live: LiveOption = False,
    allow_truncated: AllowTruncatedOption = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the API's {conversation, diff} exactly as it came.")
    ] = False,
) -> None:
    """Run a recorded run again against a deploy, a processor version or draft code; show what differs."""
    body = target_body(deploy=deploy, version=version, code=code, runtime=runtime)
    if live:
        body["outbound"] = "live"
    if allow_truncated:
        body["allow_truncated"] = True
    control = session(ctx).control
    response = control.send(
        "POST", f"/conversation/{conversation_id}/replay", json=body, timeout=REPLAY_READ_TIMEOUT_S
    )
    if response.status_code >= 400:
        refusal = control.refusal(response)
        if response.status_code == 409 and CUT_BODY_SETTING in refusal:
            refusal += "; --allow-truncated replays it with the part that was kept"
        raise Failure(refusal)
    if json_output:
        return output.print_api_json(response)
    answer = response.json()
    output.show(replay_diff.render(answer["conversation"], answer["diff"]))
