"""A TCP proxy in front of a real redis-server that can lose one answer, as a dying Redis would.

`RedisProxy(redis_url)` listens on a free port (its `url`) and forwards bytes both ways,
one thread per direction and connection. `lose_answer_to(*parts)` arms it once: the next
command (one client-to-server chunk) containing every one of `parts` (RESP bytes, e.g.
`b"XREADGROUP"`, `b"$1\\r\\n>\\r\\n"`) is forwarded to Redis, which runs it; as soon as
Redis answers, the proxy closes that connection on both sides without passing the answer
on. That is what a Redis killed between running a command (and fsyncing its effect) and
writing the reply does to a client; here Redis stays up, so the client's next attempt
succeeds at once. `lost` is set once an answer was lost.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit

CHUNK = 65536


class RedisProxy:
    def __init__(self, redis_url: str) -> None:
        parts = urlsplit(redis_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._database = parts.path or "/0"
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._armed: tuple[bytes, ...] | None = None
        self._lock = threading.Lock()
        self.lost = threading.Event()
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="redis-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}{self._database}"

    def lose_answer_to(self, *parts: bytes) -> None:
        with self._lock:
            self._armed = parts
            self.lost.clear()

    def close(self) -> None:
        self._closed = True
        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _take_arm(self, chunk: bytes) -> bool:
        with self._lock:
            if self._armed is not None and all(part in chunk for part in self._armed):
                self._armed = None
                return True
            return False

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._upstream)
            except OSError:
                client.close()
                continue
            self._sockets += [client, server]
            cut = threading.Event()
            threading.Thread(target=self._requests, args=(client, server, cut), daemon=True).start()
            threading.Thread(target=self._answers, args=(server, client, cut), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket, cut: threading.Event) -> None:
        try:
            while chunk := client.recv(CHUNK):
                if self._take_arm(chunk):
                    cut.set()  # the answer to this chunk is the one to lose
                server.sendall(chunk)
        except OSError:
            pass
        _close(client, server)

    def _answers(self, server: socket.socket, client: socket.socket, cut: threading.Event) -> None:
        try:
            while chunk := server.recv(CHUNK):
                if cut.is_set():
                    _close(client, server)
                    self.lost.set()
                    return
                client.sendall(chunk)
        except OSError:
            pass
        _close(client, server)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
