"""The in-process client of control-plane tests: Starlette's TestClient addressing the app as
http://127.0.0.1 (its default `testserver` is not a loopback name, which a control plane without
a token refuses: control_plane/rebinding.py)."""

from __future__ import annotations

import warnings
from typing import Any

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; the dev dependencies pin httpx, which works.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

LOCAL_URL = "http://127.0.0.1"


class LocalTestClient(TestClient):
    def __init__(self, app: Any, base_url: str = LOCAL_URL, **options: Any) -> None:
        super().__init__(app, base_url=base_url, **options)
