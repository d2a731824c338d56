"""`ffaas login` / `ffaas logout`: keep the admin token for a control plane, so that commands need
no FFAAS_ADMIN_TOKEN in the environment.

`login` reads the token (hidden, from a terminal; or the first line of standard input, for
scripts: `echo $TOKEN | ffaas login`), checks it against the control plane (a token that is
refused is not stored), and stores it for the control plane's URL (`settings.CredentialStore`,
mode 0600). FFAAS_ADMIN_TOKEN, when set, still wins over a stored token.
"""

from __future__ import annotations

import sys

import typer

from ffaas_cli import output
from ffaas_cli.client import Plane
from ffaas_cli.failures import UsageFailure
from ffaas_cli.session import session
from ffaas_cli.settings import CredentialStore


def login(ctx: typer.Context) -> None:
    """Store the admin token for this control plane (--url / FFAAS_URL)."""
    url = session(ctx).settings.url
    token = _read_token(url)
    _check(url, token)
    store = CredentialStore()
    store.save(url, token)
    output.line(f"token stored for {url} in {store.path}")


def logout(ctx: typer.Context) -> None:
    """Forget the stored admin token for this control plane."""
    url = session(ctx).settings.url
    store = CredentialStore()
    if store.remove(url):
        output.line(f"token for {url} removed from {store.path}")
    else:
        output.line(f"no token stored for {url}")


def _read_token(url: str) -> str:
    if sys.stdin.isatty():
        token = typer.prompt(f"admin token for {url}", hide_input=True, err=True)
    else:
        token = sys.stdin.readline()
    token = token.strip()
    if not token:
        raise UsageFailure("no token given: type it, or pipe it in (echo $TOKEN | ffaas login)")
    return token


def _check(url: str, token: str) -> None:
    """Ask an admin route with `token`: a refusal (401) fails, before anything is stored."""
    plane = Plane("control plane", url, token=token, token_source="the token given to `ffaas login`")
    try:
        plane.request("GET", "/endpoint")
    finally:
        plane.close()
