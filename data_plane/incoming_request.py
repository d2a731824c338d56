"""The incoming HTTP request as every executor and the conversation see it.

Built once per run from the ASGI scope and the already-capped body; header names
are lower-case and keep their order and repetitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from starlette.types import Scope


@dataclass(frozen=True)
class IncomingRequest:
    method: str
    path: str
    """The full, decoded request path, e.g. ``/<endpoint-id>/a/b``."""
    raw_path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    version: str
    scheme: str
    server_name: str
    server_port: int
    client_host: str

    @classmethod
    def from_scope(cls, scope: Scope, body: bytes) -> IncomingRequest:
        """From the ASGI scope (header names lower-case, as servers give them)."""
        server = scope.get("server") or ("localhost", 80)
        client = scope.get("client") or ("", 0)
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        headers = tuple((name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"])
        host_header = next((value for name, value in headers if name == "host"), "")
        server_name = host_header.rsplit(":", 1)[0] if host_header else str(server[0])
        return cls(
            method=scope["method"],
            path=unquote(raw_path) if "%" in raw_path else raw_path,
            raw_path=raw_path,
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body,
            version=f"HTTP/{scope.get('http_version', '1.1')}",
            scheme=scope.get("scheme", "http"),
            server_name=server_name,
            server_port=int(server[1] or 0),
            client_host=str(client[0] or ""),
        )

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def url(self) -> str:
        host = self.header("host") or f"{self.server_name}:{self.server_port}"
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{host}{self.raw_path}{query}"
