"""Real upstream HTTP servers for outbound-request tests that must show *when* requests arrive,
causally: a server that holds every request until the test releases it, or until it holds a
given number of requests at once (a barrier)."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable


class HoldingServer:
    """An HTTP server on 127.0.0.1 that holds each request it receives: until `release()`, or,
    with `release_at`, until it holds that many at once (then it answers that batch).  Answers
    200 with the request's path as its body; a request held longer than `timeout_s` gets a 504
    (so a test that never releases fails instead of hanging)."""

    def __init__(self, *, release_at: int | None = None, timeout_s: float = 30.0) -> None:
        self.release_at = release_at
        self.received: list[str] = []
        self.held = 0
        self.most_held = 0
        self._timeout_s = timeout_s
        self._released = False
        self._generation = 0
        self._cond = threading.Condition()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                answered = server._hold(self.path)
                body = self.path.encode() if answered else b"held too long"
                self.send_response(200 if answered else 504)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _hold(self, path: str) -> bool:
        with self._cond:
            self.received.append(path)
            self.held += 1
            self.most_held = max(self.most_held, self.held)
            generation = self._generation
            if self.release_at is not None and self.held >= self.release_at:
                self._generation += 1
            self._cond.notify_all()
            answered = self._cond.wait_for(
                lambda: self._released or self._generation > generation, timeout=self._timeout_s
            )
            self.held -= 1  # before answering: the next request can only come after this one's answer
            self._cond.notify_all()
            return answered

    def release(self) -> None:
        """Answer everything held, and every later request at once."""
        with self._cond:
            self._released = True
            self._cond.notify_all()

    def wait_until(self, condition: Callable[[HoldingServer], bool], timeout_s: float = 20.0) -> None:
        """Wait (never assert) until `condition(self)` holds; fails the test after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not condition(self):
                left = deadline - time.monotonic()
                assert left > 0, f"still waiting: held={self.held} received={self.received}"
                self._cond.wait(timeout=min(left, 0.05))

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


def wait_for(condition: Callable[[], bool], timeout_s: float = 20.0, what: str = "a condition") -> None:
    """Poll `condition` until it holds (a wait, not an assertion on time)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
