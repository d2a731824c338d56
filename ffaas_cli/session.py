"""What every command gets from the root options: the settings and a client per plane.

The root callback (`main.py`) puts a `Session` on the Typer context; commands take it with
`session(ctx)`. Clients are made on first use, so a command that needs only the data plane
never touches the control plane's settings (nor the stored token).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import typer

from ffaas_cli.client import Plane
from ffaas_cli.settings import Settings


@dataclass
class Session:
    settings: Settings
    _planes: dict[str, Plane] = field(default_factory=dict)

    @property
    def control(self) -> Plane:
        if "control" not in self._planes:
            token, source = self.settings.admin_token()
            self._planes["control"] = Plane(
                "control plane", self.settings.url, token=token, token_source=source
            )
        return self._planes["control"]

    @property
    def data(self) -> Plane:
        if "data" not in self._planes:
            self._planes["data"] = Plane("data plane", self.settings.data_plane_url)
        return self._planes["data"]

    def close(self) -> None:
        for plane in self._planes.values():
            plane.close()


def session(ctx: typer.Context) -> Session:
    found = ctx.find_object(Session)
    assert found is not None, "the root callback sets the session"
    return found
