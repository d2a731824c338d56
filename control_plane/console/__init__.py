"""The web console at /ui/: server-rendered pages (Jinja2) over the control plane's storage.

One module per page's routes (`endpoint_pages`, `processor_pages`, `conversation_pages`,
`replay_pages`, `sign_in`, `test_requests`); `pages.py` renders and guards; `timeline.py` turns a
conversation into what its page shows; `comparison.py` a replay beside its original;
`replay_options.py` what the replay forms offer; `session.py` is the signed cookie and CSRF;
`security.py` the Content-Security-Policy. Templates extend `templates/base.html`
(blocks `title`, `content`, `scripts`). The small scripts in `frontend/` are bundled by
esbuild (`make install`, into FFAAS_CONSOLE_ASSETS_DIR) and served under /ui/static/.
Reads come from storage directly; changes go through the JSON API.
"""

from __future__ import annotations

from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from control_plane.console import (
    conversation_pages,
    endpoint_pages,
    processor_pages,
    replay_pages,
    sign_in,
    test_requests,
)
from control_plane.settings import Settings
from shared.errors import NotFound


def console_routes(settings: Settings) -> list[BaseRoute]:
    return [
        *sign_in.routes,
        *endpoint_pages.routes,
        *processor_pages.routes,
        *replay_pages.routes,
        *conversation_pages.routes,
        *test_requests.routes,
        _assets(settings),
        sign_in.not_found,  # last: any other /ui/ path
    ]


def _assets(settings: Settings) -> BaseRoute:
    if settings.console_assets_dir.is_dir():
        # Gzipped when the browser accepts it: the editor's bundle is ~500 KB, ~170 KB compressed.
        assets = GZipMiddleware(StaticFiles(directory=settings.console_assets_dir), minimum_size=1024)
        return Mount("/ui/static", app=assets, name="static")

    async def not_built(request: Request) -> None:
        raise NotFound(
            f"the console's scripts and styles are not built in {settings.console_assets_dir} "
            "(FFAAS_CONSOLE_ASSETS_DIR): run `make install`"
        )

    return Route("/ui/static/{path:path}", not_built, methods=["GET"])
