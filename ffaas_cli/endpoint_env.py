"""`ffaas endpoint env ID [set NAME=VALUE... | unset NAME...]`: an endpoint's environment variables.

`env ID` shows them. The API replaces the whole set (`PUT /endpoint/<id>/env`), so `set` and
`unset` read the current set, change it, and write it back (a change made by someone else in
between is overwritten). `--json` prints what the API answered last: the set now in force.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated

import httpx
import typer

from ffaas_cli import names, output
from ffaas_cli.failures import UsageFailure
from ffaas_cli.output import JsonOption
from ffaas_cli.session import session


class Action(StrEnum):
    set = "set"
    unset = "unset"


def env(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(metavar="ID", help="The endpoint's id or unique name.")],
    action: Annotated[Action | None, typer.Argument(help="set NAME=VALUE..., or unset NAME...")] = None,
    items: Annotated[
        list[str] | None, typer.Argument(metavar="[NAME=VALUE | NAME]...", show_default=False)
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Show an endpoint's environment variables, or set and unset some (the others stay)."""
    control = session(ctx).control
    if action is None:
        if items:
            raise UsageFailure(
                f"say what to do with {items[0]!r}: env ID set NAME=VALUE, or env ID unset NAME"
            )
        response = control.request("GET", f"/endpoint/{names.resolve(control, 'endpoint', endpoint)}/env")
        return _show(response, json_output)
    if not items:
        raise UsageFailure(
            f"env {action.value} needs at least one {'NAME=VALUE' if action is Action.set else 'NAME'}"
        )
    change = _setting(items) if action is Action.set else _unsetting(items)
    endpoint_id = names.resolve(control, "endpoint", endpoint)
    current = control.json("GET", f"/endpoint/{endpoint_id}/env")
    response = control.request("PUT", f"/endpoint/{endpoint_id}/env", json=change(current))
    _show(response, json_output)


def _setting(assignments: list[str]) -> Callable[[dict[str, str]], dict[str, str]]:
    changes = dict(_assignment(assignment) for assignment in assignments)
    return lambda current: {**current, **changes}


def _unsetting(variables: list[str]) -> Callable[[dict[str, str]], dict[str, str]]:
    def without(current: dict[str, str]) -> dict[str, str]:
        for name in variables:
            if name not in current:
                output.note(f"{name} was not set")
        return {name: value for name, value in current.items() if name not in variables}

    return without


def _show(response: httpx.Response, json_output: bool) -> None:
    if json_output:
        return output.print_api_json(response)
    variables = response.json()
    if not variables:
        return output.line("no environment variables")
    for name, value in sorted(variables.items()):
        output.line(f"{name}={value}")


def _assignment(assignment: str) -> tuple[str, str]:
    name, equals, value = assignment.partition("=")
    if not equals or not name:
        raise UsageFailure(f"set wants NAME=VALUE, got {assignment!r}")
    return name, value
