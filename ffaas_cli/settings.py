"""Where the command finds the two planes and the admin token.

- Control plane: `--url`, else `FFAAS_URL`, else http://127.0.0.1:3000.
- Data plane: `--data-plane-url`, else `FFAAS_DATA_PLANE_URL`, else http://127.0.0.1:4000, the
  port `make up` starts it on. (Not asked of the control plane: `call` by id and `status` work
  with the data plane alone, and one fixed default is easier to predict than a guess.)
- Admin token: `FFAAS_ADMIN_TOKEN`, else the token `ffaas login` stored for this control plane's
  URL, else none (right for a control plane started without one).

Stored tokens live in `<config dir>/credentials.json`, the config dir being
`$XDG_CONFIG_HOME/ffaas` (`~/.config/ffaas` by default): a JSON object of control plane URL to
token, written whole to a temporary file of mode 0600 and renamed over the old one, in a
directory of mode 0700, so a token is never readable by other users, not even for a moment.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import typer

from ffaas_cli.failures import Failure, UsageFailure

DEFAULT_URL = "http://127.0.0.1:3000"
DEFAULT_DATA_PLANE_URL = "http://127.0.0.1:4000"
TOKEN_VARIABLE = "FFAAS_ADMIN_TOKEN"
CREDENTIALS_FILE = "credentials.json"


@dataclass(frozen=True)
class Settings:
    url: str
    data_plane_url: str
    environment_token: str | None

    @classmethod
    def resolve(cls, url: str | None, data_plane_url: str | None, environ: Mapping[str, str]) -> Settings:
        """`url`/`data_plane_url`: the options (Typer already fell back to FFAAS_URL and
        FFAAS_DATA_PLANE_URL), None when neither was given."""
        control = base_url(url or DEFAULT_URL, "--url / FFAAS_URL")
        data = base_url(data_plane_url or DEFAULT_DATA_PLANE_URL, "--data-plane-url / FFAAS_DATA_PLANE_URL")
        return cls(control, data, environ.get(TOKEN_VARIABLE) or None)

    def admin_token(self) -> tuple[str | None, str]:
        """The token and where it came from (for hints): FFAAS_ADMIN_TOKEN, `ffaas login`, or none."""
        if self.environment_token is not None:
            return self.environment_token, TOKEN_VARIABLE
        stored = CredentialStore().token_for(self.url)
        return stored, ("`ffaas login`" if stored else "none")


def base_url(value: str, setting: str) -> str:
    """`value` without a trailing slash; anything but an http(s) URL is bad usage."""
    value = value.strip().rstrip("/")
    scheme, _, rest = value.partition("://")
    if scheme not in ("http", "https") or not rest:
        raise UsageFailure(f"{setting} must be an http:// or https:// URL, got {value!r}")
    return value


def config_dir() -> Path:
    """`$XDG_CONFIG_HOME/ffaas`, or `~/.config/ffaas` (Typer's app dir on Linux)."""
    return Path(typer.get_app_dir("ffaas"))


class CredentialStore:
    """Tokens stored by `ffaas login`, one per control plane URL."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or config_dir()
        self.path = self.directory / CREDENTIALS_FILE

    def token_for(self, url: str) -> str | None:
        token = self._load().get(url)
        return token if isinstance(token, str) and token else None

    def save(self, url: str, token: str) -> None:
        stored = self._load()
        stored[url] = token
        self._write(stored)

    def remove(self, url: str) -> bool:
        stored = self._load()
        if url not in stored:
            return False
        del stored[url]
        self._write(stored)
        return True

    def _load(self) -> dict[str, object]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise Failure(f"cannot read the stored tokens in {self.path}: {exc.strerror}") from exc
        try:
            stored = json.loads(text)
        except json.JSONDecodeError as exc:
            raise Failure(
                f"{self.path} is not valid JSON ({exc}); delete it and run `ffaas login` again"
            ) from exc
        if not isinstance(stored, dict):
            raise Failure(f"{self.path} is not a JSON object; delete it and run `ffaas login` again")
        return stored

    def _write(self, stored: dict[str, object]) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(prefix=".credentials-", dir=self.directory)
            try:
                os.fchmod(descriptor, 0o600)
                with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                    json.dump(stored, file, indent=2)
                    file.write("\n")
                os.replace(temporary, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as exc:
            raise Failure(f"cannot store the token in {self.path}: {exc.strerror or exc}") from exc
