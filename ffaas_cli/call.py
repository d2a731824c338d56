"""`ffaas call ENDPOINT[/PATH] [-d ...] [-X ...] [-H ...]`: run an endpoint on the data plane.

ENDPOINT is the endpoint's id, or its unique name (looked up on the control plane); what
follows the first `/` (a sub-path and a query) goes to the module as it is. By id, `call`
needs only the data plane. Options and output: `run_request.py`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ffaas_cli import names, run_request
from ffaas_cli.session import session


def call(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            metavar="ENDPOINT[/PATH]", help="The endpoint's id or unique name, then any sub-path and query."
        ),
    ],
    data: run_request.DataOption = None,
    method: run_request.MethodOption = None,
    header: run_request.HeaderOption = None,
    include: run_request.IncludeOption = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print {status, headers, body, conversation_id} as JSON.")
    ] = False,
) -> None:
    """Run an endpoint; prints its response and the conversation id."""
    request = run_request.build(data, method, header)
    endpoint, slash, rest = target.partition("/")
    if "?" in endpoint:  # ENDPOINT?query, without a sub-path
        endpoint, _, query = endpoint.partition("?")
        slash, rest = "", f"?{query}{slash}{rest}"
    found = session(ctx)
    endpoint_id = (
        endpoint if names.looks_like_id(endpoint) else names.resolve(found.control, "endpoint", endpoint)
    )
    response = run_request.send(found.data, f"/{endpoint_id}{slash}{rest}", request)
    raise typer.Exit(run_request.show(found.data, response, as_json=json_output, include=include))
