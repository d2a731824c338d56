"""`ffaas processor ...`: create, list, get, update, delete and run JavaScript/TypeScript processors.

The language comes from the file's extension (.js .mjs .cjs: js; .ts .mts .cts: ts). `update`
sends the whole processor (PUT replaces it): the new code, and the name and runtime it had
unless `--name`/`--runtime` change them. Every ID argument also takes a unique name. Versions
and rollback: `processor_versions.py`; replaying recorded runs: `replay_batches.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ffaas_cli import names, output, processor_versions, replay_batches, run_request
from ffaas_cli.code_files import Runtime, read_code
from ffaas_cli.output import JsonOption
from ffaas_cli.session import session

app = typer.Typer(
    help="JavaScript/TypeScript processors: create, update, run, versions, replay.", no_args_is_help=True
)

ProcessorArgument = Annotated[str, typer.Argument(metavar="ID", help="The processor's id or unique name.")]
CodeFile = Annotated[
    Path,
    typer.Argument(
        metavar="FILE.js|FILE.ts",
        help="The code; its extension says the language.",
        exists=True,
        dir_okay=False,
    ),
]


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name for people; need not be unique.")],
    file: CodeFile,
    runtime: Annotated[
        Runtime, typer.Option(help="Where it runs: embedded V8, or the wasm sandbox.")
    ] = Runtime.v8,
    json_output: JsonOption = False,
) -> None:
    """Store a processor (its code is checked, or transpiled, now)."""
    language, code = read_code(file)
    fields = {"name": name, "language": language, "runtime": runtime.value, "code": code}
    response = session(ctx).control.request("POST", "/admin/processor", json=fields)
    if json_output:
        return output.print_api_json(response)
    processor = response.json()
    output.line(
        f"created processor {processor['name']} {processor['id']} ({language}, {processor['runtime']})"
    )
    output.note(f"run it: ffaas processor run {processor['id']} --prelude -d 'hello'")


@app.command("list")
def list_processors(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List processors, oldest first."""
    response = session(ctx).control.request("GET", "/admin/processor")
    if json_output:
        return output.print_api_json(response)
    shown = output.table("ID", "NAME", "LANGUAGE", "RUNTIME", "CODE")
    for processor in response.json():
        shown.add_row(
            processor["id"],
            processor["name"],
            processor["language"],
            processor["runtime"],
            f"{len(processor['code'].encode())} bytes",
        )
    output.show(shown)


@app.command()
def get(ctx: typer.Context, processor: ProcessorArgument, json_output: JsonOption = False) -> None:
    """Show a processor and its code."""
    control = session(ctx).control
    response = control.request("GET", f"/admin/processor/{names.resolve(control, 'processor', processor)}")
    if json_output:
        return output.print_api_json(response)
    show_processor(response.json())


@app.command()
def update(
    ctx: typer.Context,
    processor: ProcessorArgument,
    file: CodeFile,
    name: Annotated[str | None, typer.Option(help="A new name (default: keep it).")] = None,
    runtime: Annotated[Runtime | None, typer.Option(help="A new runtime (default: keep it).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Replace a processor's code (and its name or runtime if given)."""
    control = session(ctx).control
    processor_id = names.resolve(control, "processor", processor)
    language, code = read_code(file)
    current = control.json("GET", f"/admin/processor/{processor_id}")
    fields = {
        "name": name if name is not None else current["name"],
        "language": language,
        "runtime": runtime.value if runtime is not None else current["runtime"],
        "code": code,
    }
    response = control.request("PUT", f"/admin/processor/{processor_id}", json=fields)
    if json_output:
        return output.print_api_json(response)
    updated = response.json()
    output.line(
        f"updated processor {updated['name']} {updated['id']} ({updated['language']}, {updated['runtime']})"
    )


@app.command()
def delete(ctx: typer.Context, processor: ProcessorArgument, json_output: JsonOption = False) -> None:
    """Delete a processor (its conversations stay)."""
    control = session(ctx).control
    processor_id = names.resolve(control, "processor", processor)
    control.request("DELETE", f"/admin/processor/{processor_id}")
    if not json_output:  # the API answers 204 with no body: --json prints nothing
        output.line(f"deleted processor {processor_id}")


@app.command()
def run(
    ctx: typer.Context,
    processor: ProcessorArgument,
    prelude: Annotated[
        bool, typer.Option("--prelude", help="Run with the fh prelude: main(fh, request), /run_with_prelude.")
    ] = False,
    data: run_request.DataOption = None,
    method: run_request.MethodOption = None,
    header: run_request.HeaderOption = None,
    include: run_request.IncludeOption = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print {status, headers, body, conversation_id} as JSON.")
    ] = False,
) -> None:
    """Run a processor on the data plane; prints its response and the conversation id."""
    request = run_request.build(data, method, header)
    found = session(ctx)
    processor_id = (
        processor if names.looks_like_id(processor) else names.resolve(found.control, "processor", processor)
    )
    entry = "run_with_prelude" if prelude else "run"
    response = run_request.send(found.data, f"/processor/{processor_id}/{entry}", request)
    raise typer.Exit(run_request.show(found.data, response, as_json=json_output, include=include))


# Registered after the commands above, so that --help lists them in this order.
app.command()(processor_versions.versions)
app.command()(processor_versions.version)
app.command()(processor_versions.rollback)
app.command("replay")(replay_batches.processor_replay)


def show_processor(processor: dict[str, Any]) -> None:
    output.show(
        output.fields(
            [
                ("processor", f"{processor['name']} {processor['id']}"),
                ("language", processor["language"]),
                ("runtime", processor["runtime"]),
            ]
        )
    )
    if processor.get("version_history"):
        output.line()
        output.show(processor_versions.versions_table(processor))
    output.line()
    output.show(processor_versions.code_view(processor["code"], processor["language"]))
