"""`ffaas endpoint ...`: create, list, get, delete, deploy (with a progress bar), roll back.

Every ID argument also takes an endpoint's unique name (`names.py`); `env` lives in its own module
(`endpoint_env.py`), `replay` in `replay_batches.py`. `deploy --no-activate` stores a deploy
without serving it (`?activate=false`), to replay recorded runs against it before a rollback to it
makes it active. `--json` prints the API's answer as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.text import Text

from ffaas_cli import endpoint_env, names, output, replay_batches
from ffaas_cli.failures import UsageFailure
from ffaas_cli.output import JsonOption
from ffaas_cli.session import session

NIL_UUID = "00000000-0000-0000-0000-000000000000"
UPLOAD_CHUNK_BYTES = 64 * 1024

app = typer.Typer(
    help="WebAssembly endpoints: create, deploy, roll back, environment, replay.", no_args_is_help=True
)
app.command("env")(endpoint_env.env)

EndpointArgument = Annotated[str, typer.Argument(metavar="ID", help="The endpoint's id or unique name.")]


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name for people; need not be unique.")],
    json_output: JsonOption = False,
) -> None:
    """Create an endpoint (it has no deploy yet)."""
    response = session(ctx).control.request("POST", "/endpoint", json={"name": name})
    if json_output:
        return output.print_api_json(response)
    endpoint = response.json()
    output.line(f"created endpoint {endpoint['name']} {endpoint['id']}")
    output.show(
        output.fields(
            [("url", endpoint["url"]), ("next", f"ffaas endpoint deploy {endpoint['id']} FILE.wasm")]
        )
    )


@app.command("list")
def list_endpoints(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List endpoints, oldest first."""
    response = session(ctx).control.request("GET", "/endpoint")
    if json_output:
        return output.print_api_json(response)
    shown = output.table("ID", "NAME", "ACTIVE DEPLOY", "DEPLOYS", "CREATED", "URL")
    for endpoint in response.json():
        shown.add_row(
            endpoint["id"],
            endpoint["name"],
            _active(endpoint),
            str(len(endpoint["deploy_history"])),
            endpoint["created_at"],
            endpoint["url"],
        )
    output.show(shown)


@app.command()
def get(ctx: typer.Context, endpoint: EndpointArgument, json_output: JsonOption = False) -> None:
    """Show an endpoint and its deploys."""
    control = session(ctx).control
    response = control.request("GET", f"/endpoint/{names.resolve(control, 'endpoint', endpoint)}")
    if json_output:
        return output.print_api_json(response)
    show_endpoint(response.json())


@app.command()
def delete(ctx: typer.Context, endpoint: EndpointArgument, json_output: JsonOption = False) -> None:
    """Delete an endpoint and its deploys (its conversations stay)."""
    control = session(ctx).control
    endpoint_id = names.resolve(control, "endpoint", endpoint)
    control.request("DELETE", f"/endpoint/{endpoint_id}")
    if not json_output:  # the API answers 204 with no body: --json prints nothing
        output.line(f"deleted endpoint {endpoint_id}")


@app.command()
def deploy(
    ctx: typer.Context,
    endpoint: EndpointArgument,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE.wasm",
            help="A WASI command module (exports _start and memory).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    no_activate: Annotated[
        bool,
        typer.Option(
            "--no-activate",
            help="Store it without serving it: replay runs against it first, activate it with rollback.",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Upload a module to an endpoint; it becomes the active deploy (unless --no-activate)."""
    control = session(ctx).control
    endpoint_id = names.resolve(control, "endpoint", endpoint)
    size = file.stat().st_size
    if size == 0:
        raise UsageFailure(f"{file} is empty; a deploy is a WebAssembly module")
    progress = Progress(
        TextColumn("uploading {task.description}"),
        BarColumn(),
        DownloadColumn(),
        console=output.stderr(),
    )
    with progress:
        task = progress.add_task(file.name, total=size)

        def chunks() -> Iterator[bytes]:
            with file.open("rb") as source:
                while chunk := source.read(UPLOAD_CHUNK_BYTES):
                    yield chunk
                    progress.advance(task, len(chunk))

        response = control.request(
            "POST",
            f"/endpoint/{endpoint_id}/deploy",
            params={"activate": "false"} if no_activate else None,
            content=chunks(),
            headers={"content-type": "application/octet-stream", "content-length": str(size)},
        )
    if json_output:
        return output.print_api_json(response)
    deployed = response.json()
    endpoint_now = control.json("GET", f"/endpoint/{endpoint_id}")
    url = endpoint_now["url"]
    rows: list[tuple[str, str | Text]] = [
        ("deploy", deployed["id"]),
        ("hash", deployed["hash"]),
        ("created", deployed["created_at"]),
    ]
    if not no_activate:
        output.line(f"deployed {file.name} to endpoint {endpoint_id}")
        output.show(output.fields([*rows, ("url", Text(url, style="bold"))]))
        return
    active = _active(endpoint_now)
    serving = "it has no active deploy" if active == "none" else f"it still runs deploy {active}"
    output.line(f"uploaded {file.name} to endpoint {endpoint_id}, not active ({serving})")
    replay = f"ffaas endpoint replay {endpoint_id} --deploy {deployed['id']} --last 20"
    activate = f"ffaas endpoint rollback {endpoint_id} {deployed['id']}"
    output.show(output.fields([*rows, ("replay", replay), ("activate", activate)]))


@app.command()
def rollback(
    ctx: typer.Context,
    endpoint: EndpointArgument,
    deploy_id: Annotated[
        str | None, typer.Argument(help="The deploy to make active; default: the one before the active one.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Make an older deploy active again (the history does not change)."""
    control = session(ctx).control
    endpoint_id = names.resolve(control, "endpoint", endpoint)
    body = None if deploy_id is None else {"deploy_id": deploy_id}
    response = control.request("POST", f"/endpoint/{endpoint_id}/rollback", json=body)
    if json_output:
        return output.print_api_json(response)
    rolled = response.json()
    output.line(f"endpoint {endpoint_id} now runs deploy {rolled['active_deploy_id']}")


app.command("replay")(replay_batches.endpoint_replay)  # after the commands above, as --help lists them


def show_endpoint(endpoint: dict[str, Any]) -> None:
    output.show(
        output.fields(
            [
                ("endpoint", f"{endpoint['name']} {endpoint['id']}"),
                ("url", endpoint["url"]),
                ("created", endpoint["created_at"]),
                ("active deploy", _active(endpoint)),
            ]
        )
    )
    history = endpoint["deploy_history"]
    if not history:
        output.line("no deploys yet")
        return
    shown = output.table("", "DEPLOY", "HASH", "CREATED")
    for deployed in history:
        active = deployed["id"] == endpoint["active_deploy_id"]
        shown.add_row("*" if active else "", deployed["id"], deployed["hash"], deployed["created_at"])
    output.line()
    output.show(shown)


def _active(endpoint: dict[str, Any]) -> str:
    active = endpoint["active_deploy_id"]
    return "none" if active == NIL_UUID else str(active)
