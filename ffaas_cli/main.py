"""The `ffaas` command: the root options, the command groups, and the one place errors are printed.

`run()` (the console script) drives Typer's command without its own error handling, so that
every failure leaves the same way: `error: <one line>` on stderr, exit status 1 for a refused
or impossible request (`failures.Failure`), 2 for bad usage (Typer's usage errors, and
`failures.UsageFailure`). Shell completion comes from Typer: `ffaas --install-completion`.

Adding a command: a function in its group's module, registered with `@app.command()`; a new
group: a module with its own `typer.Typer()`, added below with `app.add_typer`.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.text import Text

# Typer 0.29 carries its own copy of Click; its exceptions are what a usage error raises.
from typer._click.exceptions import ClickException

from ffaas_cli import call, conversation, endpoint, login, output, processor, replay, status
from ffaas_cli.failures import BAD_USAGE, REFUSED, Failure
from ffaas_cli.session import Session
from ffaas_cli.settings import DEFAULT_DATA_PLANE_URL, DEFAULT_URL, Settings

app = typer.Typer(
    name="ffaas",
    help="FFAAS from the terminal: endpoints, processors, runs and their conversations. "
    "The admin token comes from FFAAS_ADMIN_TOKEN, or from `ffaas login`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(endpoint.app, name="endpoint")
app.add_typer(processor.app, name="processor")
app.add_typer(conversation.app, name="conversation")
app.add_typer(replay.app, name="replay")
app.command()(call.call)
app.command()(status.status)
app.command()(login.login)
app.command()(login.logout)


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            envvar="FFAAS_URL",
            help=f"The control plane (default {DEFAULT_URL}).",
            show_default=False,
        ),
    ] = None,
    data_plane_url: Annotated[
        str | None,
        typer.Option(
            "--data-plane-url",
            envvar="FFAAS_DATA_PLANE_URL",
            help=f"The data plane, for call, processor run and status (default {DEFAULT_DATA_PLANE_URL}).",
            show_default=False,
        ),
    ] = None,
) -> None:
    found = Session(Settings.resolve(url, data_plane_url, os.environ))
    ctx.obj = found
    ctx.call_on_close(found.close)


def run(args: list[str] | None = None) -> None:
    """The console script: run the command, and leave with one error line and a status if it fails."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="ffaas", standalone_mode=False)
    except Failure as exc:
        _fail(exc.message, exc.exit_code)
    except ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help was printed; nothing is wrong to say
            sys.exit(BAD_USAGE)
        _fail(f"{exc.format_message()} (see {_command_path(exc)} --help)", exc.exit_code)
    except typer.Abort:
        _fail("aborted", REFUSED)
    sys.exit(result if isinstance(result, int) else 0)


def _fail(message: str, exit_code: int) -> None:
    output.stderr().print(Text.assemble(("error: ", "bold red"), " ".join(message.split())), soft_wrap=True)
    sys.exit(exit_code)


def _command_path(exc: ClickException) -> str:
    ctx = getattr(exc, "ctx", None)
    return ctx.command_path if ctx is not None else "ffaas"
