"""The run path reads requests from the ASGI scope and `receive` itself (no Starlette `Request`):
what it reads must be what Starlette's `Request` reads from the same scope and messages."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote

import pytest
from starlette.requests import ClientDisconnect, Request

from data_plane.incoming_request import IncomingRequest
from shared.errors import BadRequest, PayloadTooLarge
from shared.request_body import read_capped_asgi_body

SCOPES: list[dict[str, Any]] = [
    {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/ep/a b/ü",
        "raw_path": b"/ep/a%20b/%C3%BC",
        "query_string": b"x=1&y=%20",
        "headers": [
            (b"host", b"example.test:8080"),
            (b"x-many", b"one"),
            (b"x-many", b"two"),
            (b"content-type", b"text/plain"),
            (b"x-latin", "caf\xe9".encode("latin-1")),
        ],
        "server": ("127.0.0.1", 4000),
        "client": ("10.0.0.7", 51234),
    },
    {  # no Host header, no raw_path, no server/client: the defaults
        "type": "http",
        "method": "GET",
        "path": "/ep",
        "headers": [],
    },
]


def starlette_view(scope: dict[str, Any], body: bytes) -> IncomingRequest:
    """What the run path built from Starlette's `Request` before it read the scope itself."""
    request = Request(scope)
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    host_header = request.headers.get("host", "")
    return IncomingRequest(
        method=request.method,
        path=unquote(raw_path),
        raw_path=raw_path,
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=tuple((name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]),
        body=body,
        version=f"HTTP/{scope.get('http_version', '1.1')}",
        scheme=scope.get("scheme", "http"),
        server_name=host_header.rsplit(":", 1)[0] if host_header else str(server[0]),
        server_port=int(server[1] or 0),
        client_host=str(client[0] or ""),
    )


@pytest.mark.parametrize("scope", SCOPES)
def test_the_incoming_request_is_what_starlette_reads(scope: dict[str, Any]) -> None:
    assert IncomingRequest.from_scope(scope, b"body") == starlette_view(scope, b"body")


def messages(*chunks: bytes, disconnect: bool = False) -> Any:
    queue = [{"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks]
    queue.append({"type": "http.disconnect"} if disconnect else {"type": "http.request", "body": b""})

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


def read(scope: dict[str, Any], receive: Any, limit: int = 10) -> bytes:
    return asyncio.run(read_capped_asgi_body(scope, receive, limit, "too large"))


def scope_with(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/", "headers": list(headers)}


def test_a_body_in_chunks_is_read_whole_as_starlette_reads_it() -> None:
    scope = scope_with()
    assert read(scope, messages(b"ab", b"", b"cd")) == b"abcd"

    async def starlette_body() -> bytes:
        return await Request(scope, messages(b"ab", b"", b"cd")).body()

    assert asyncio.run(starlette_body()) == b"abcd"
    assert read(scope, messages()) == b""


def test_a_body_over_the_limit_is_refused_from_its_length_or_while_read() -> None:
    with pytest.raises(PayloadTooLarge):
        read(scope_with((b"content-length", b"11")), messages())  # nothing read
    with pytest.raises(PayloadTooLarge):
        read(scope_with(), messages(b"123456", b"12345"))
    assert read(scope_with((b"content-length", b"10")), messages(b"1234567890")) == b"1234567890"


def test_a_content_length_that_is_not_a_number_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="Content-Length header must be a whole number, got '1x'"):
        read(scope_with((b"content-length", b"1x")), messages())


def test_a_client_gone_while_its_body_is_read_is_a_client_disconnect() -> None:
    with pytest.raises(ClientDisconnect):
        read(scope_with(), messages(b"ab", disconnect=True))
