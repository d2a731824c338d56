"""`ffaas conversation list | show | tail | replay`: the record of runs.

`list` pages through `GET /conversation` (newest first) up to `--limit`; `show` renders one run
as a timeline (`timeline.py`); `tail` prints runs as they are stored (`tail.py`); `replay` runs
one again against another version (`conversation_replay.py`). `--endpoint`
and `--processor` take ids or unique names. People see which endpoint or processor ran by name
(read once from the two lists); `--json` prints the API's JSON: the page (pages joined, past
one page), the conversation, or one list item per line for `tail`.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.text import Text

from ffaas_cli import conversation_replay, names, output, tail, timeline
from ffaas_cli.client import Plane
from ffaas_cli.failures import Failure
from ffaas_cli.output import JsonOption
from ffaas_cli.session import session

MAX_PAGE = 500
"""The largest page the API gives (`limit`); longer lists are read page by page."""

app = typer.Typer(help="Conversations: the record of every run, and replays of them.", no_args_is_help=True)
app.command("replay")(conversation_replay.replay)

EndpointFilter = Annotated[
    str | None, typer.Option("--endpoint", help="Only this endpoint's runs (id or name).")
]
ProcessorFilter = Annotated[
    str | None, typer.Option("--processor", help="Only this processor's runs (id or name).")
]
OutcomeFilter = Annotated[
    str | None, typer.Option("--outcome", help="Only runs that ended so: completed, timed_out, trapped, ...")
]


@app.command("list")
def list_conversations(
    ctx: typer.Context,
    endpoint: EndpointFilter = None,
    processor: ProcessorFilter = None,
    outcome: OutcomeFilter = None,
    replay_of: Annotated[
        str | None, typer.Option("--replay-of", metavar="ID", help="Only the replays of this conversation.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    json_output: JsonOption = False,
) -> None:
    """List conversations, newest first (replays are marked so)."""
    control = session(ctx).control
    filters = _filters(control, endpoint, processor, outcome)
    if replay_of is not None:
        filters["replay_of"] = replay_of
    pages: list[dict[str, Any]] = []
    wanted, before = limit, None
    while wanted > 0:
        params: dict[str, Any] = {**filters, "limit": min(wanted, MAX_PAGE)}
        if before is not None:
            params["before"] = before
        response = control.request("GET", "/conversation", params=params)
        if json_output and limit <= MAX_PAGE:
            return output.print_api_json(response)
        page = response.json()
        pages.append(page)
        wanted -= len(page["conversations"])
        before = page["next"]
        if before is None:
            break
    conversations = [c for page in pages for c in page["conversations"]]
    if json_output:
        sys.stdout.write(json.dumps({"conversations": conversations, "next": pages[-1]["next"]}) + "\n")
        return
    labels = Labels(control)
    shown = output.table("CREATED", "STATUS", "OUTCOME", "DURATION", "RAN", "CONVERSATION")
    for conversation in conversations:
        shown.add_row(*_columns(conversation, labels))
    output.show(shown)
    if not conversations:
        output.note("no conversations")


@app.command()
def show(
    ctx: typer.Context,
    conversation_id: Annotated[
        str, typer.Argument(metavar="ID", help="The conversation id (FH-Conversation-Id).")
    ],
    json_output: JsonOption = False,
) -> None:
    """Show one run as a timeline: request, logs, outbound calls, response, outcome."""
    control = session(ctx).control
    response = control.request("GET", f"/conversation/{conversation_id}")
    if json_output:
        return output.print_api_json(response)
    conversation = response.json()
    output.show(timeline.render(conversation, _name_of_what_ran(control, conversation)))


@app.command("tail")
def tail_conversations(
    ctx: typer.Context,
    endpoint: EndpointFilter = None,
    processor: ProcessorFilter = None,
    outcome: OutcomeFilter = None,
    poll: Annotated[
        bool, typer.Option("--poll", help="Poll the list instead of following the live stream.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print each conversation as the API's JSON, one per line.")
    ] = False,
) -> None:
    """Print runs as they are stored, until interrupted (Ctrl-C)."""
    control = session(ctx).control
    filters = _filters(control, endpoint, processor, outcome)
    labels = None if json_output else Labels(control)

    def started(how: str) -> None:
        output.note(f"following {how} at {control.base_url} (Ctrl-C stops)")

    for conversation, raw in tail.follow(control, filters, poll=poll, started=started):
        if json_output:
            sys.stdout.write(raw + "\n")
        else:
            assert labels is not None
            output.line(Text("  ").join(Text(column) for column in _columns(conversation, labels)))
        sys.stdout.flush()


class Labels:
    """Names of endpoints and processors by id, read once; an id not found stays an id."""

    def __init__(self, control: Plane) -> None:
        self.names: dict[str, str] = {}
        for kind, path in names.KINDS.items():
            try:
                listed = control.json("GET", path)
            except Failure:
                continue  # a label is a nicety; the ids are shown anyway
            self.names.update({item["id"]: f"{kind} {item['name']}" for item in listed})

    def of(self, conversation: dict[str, Any]) -> str:
        ran = self.of_subject(conversation.get("endpoint_id"), conversation.get("request_processor_id"))
        return f"{ran} (replay)" if conversation.get("replay_of") else ran

    def of_subject(self, endpoint_id: str | None, processor_id: str | None) -> str:
        if endpoint_id:
            return self.names.get(endpoint_id, f"endpoint {endpoint_id}")
        return self.names.get(processor_id or "", f"processor {processor_id}")


def _name_of_what_ran(control: Plane, conversation: dict[str, Any]) -> str | None:
    """The endpoint's or processor's name, when it still exists and the token allows reading it."""
    if conversation.get("endpoint_id"):
        path = f"/endpoint/{conversation['endpoint_id']}"
    elif conversation.get("request_processor_id"):
        path = f"/admin/processor/{conversation['request_processor_id']}"
    else:
        return None
    try:
        return str(control.json("GET", path)["name"])
    except Failure:
        return None  # deleted since, or no token: the ids below say what ran


def _columns(conversation: dict[str, Any], labels: Labels) -> list[str]:
    return [
        conversation["created_at"],
        str(conversation["status"]),
        conversation["outcome"],
        output.duration(conversation.get("duration_ms")),
        labels.of(conversation),
        conversation["id"],
    ]


def _filters(
    control: Plane, endpoint: str | None, processor: str | None, outcome: str | None
) -> dict[str, str]:
    filters = {}
    if endpoint is not None:
        filters["endpoint_id"] = names.resolve(control, "endpoint", endpoint)
    if processor is not None:
        filters["processor_id"] = names.resolve(control, "processor", processor)
    if outcome is not None:
        filters["outcome"] = outcome
    return filters
