"""A real, minimal HTTP/1.1 server on a loopback address for outbound request tests.

It records each request exactly as it arrived on the wire (header names in their case and order) and
answers with whatever the test's handler returns, so tests can see what the capability really sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Received:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)


@dataclass
class Reply:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    delay: float = 0.0
    content_length: bool = True
    """Without Content-Length the body is delimited by closing the connection."""


Handler = Callable[[Received], Awaitable[Reply]]


async def _ok(request: Received) -> Reply:
    return Reply(body=b"ok")


class LocalHttpServer:
    def __init__(
        self,
        handler: Handler = _ok,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        port: int = 0,
    ) -> None:
        self.handler = handler
        self.tls = tls
        self.host = host
        self.port = port
        self.received: list[Received] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while await self._exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or `aclose` cancelled this connection's task
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")[:-2]
        method, target, _version = lines[0].split(" ")
        headers = [(name, value.strip()) for name, value in (line.split(":", 1) for line in lines[1:])]
        length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
        body = await reader.readexactly(length)
        request = Received(method, target, headers, body)
        self.received.append(request)
        reply = await self.handler(request)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        out = [f"HTTP/1.1 {reply.status} Reason"]
        out += [f"{name}: {value}" for name, value in reply.headers]
        if reply.content_length:
            out.append(f"Content-Length: {len(reply.body)}")
        else:
            out.append("Connection: close")
        writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
        body_out = b"" if method == "HEAD" else reply.body
        for start in range(0, len(body_out), 65536):
            writer.write(body_out[start : start + 65536])
            await writer.drain()
        await writer.drain()
        return reply.content_length


@contextlib.asynccontextmanager
async def serving(
    handler: Handler = _ok, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None, port: int = 0
) -> AsyncIterator[LocalHttpServer]:
    server = LocalHttpServer(handler, host, tls, port)
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()
