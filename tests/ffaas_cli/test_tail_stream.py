"""`tail` on the live stream (`GET /conversation/stream`, Server-Sent Events), and its fall-back.

The stream route is being added to the control plane in parallel (h11-console); until it is on
main, a local HTTP server speaks its announced protocol here (`event: conversation`,
`id: <cursor>`, `data: <one list item>`, resumed with `Last-Event-ID`), so that reconnecting
without missing or repeating a conversation, and falling back to the list where the route answers
404, are shown. The e2e tests (tests/e2e/cli) run `tail` against the real control plane.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice
from typing import Any

import pytest

from ffaas_cli import tail
from ffaas_cli.client import Plane


def item(number: int) -> dict[str, Any]:
    return {
        "id": f"conversation-{number}",
        "created_at": f"2026-01-01T00:00:0{number}.000000Z",
        "status": 200,
    }


class StandIn:
    """Serves the stream: the first connection sends conversations 1 and 2, then ends (as a control
    plane restarting would); later ones send what follows the Last-Event-ID they present."""

    def __init__(self, *, has_stream: bool = True) -> None:
        self.last_event_ids: list[str | None] = []
        self.list_reads = 0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.startswith("/conversation/stream") and has_stream:
                    stand_in.stream(self)
                elif self.path.startswith("/conversation?"):
                    stand_in.list_reads += 1
                    stand_in.json(self, 200, {"conversations": [item(stand_in.list_reads)], "next": None})
                else:
                    stand_in.json(self, 404, {"code": 404, "message": "conversation stream not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stream(self, handler: BaseHTTPRequestHandler) -> None:
        last = handler.headers.get("last-event-id")
        self.last_event_ids.append(last)
        first = 1 if last is None else int(last) + 1
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("connection", "close")
        handler.end_headers()
        handler.wfile.write(b": a comment, as heartbeats are\n\n")
        for number in range(first, first + 2):
            event = f"event: conversation\nid: {number}\ndata: {json.dumps(item(number))}\n\n"
            handler.wfile.write(event.encode())
        handler.wfile.flush()
        handler.close_connection = True

    def json(self, handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    yield server
    server.close()


def test_the_stream_resumes_after_the_last_event_without_repeats(stand_in: StandIn) -> None:
    plane = Plane("control plane", stand_in.url)
    started: list[str] = []

    followed = list(islice(tail.follow(plane, {"endpoint_id": "e"}, poll=False, started=started.append), 5))

    assert [conversation["id"] for conversation, _ in followed] == [f"conversation-{n}" for n in range(1, 6)]
    assert [json.loads(raw) for _, raw in followed] == [conversation for conversation, _ in followed]
    assert started == ["the conversation stream"]
    assert stand_in.last_event_ids == [None, "2", "4"]


def test_without_a_stream_route_the_list_is_polled() -> None:
    server = StandIn(has_stream=False)
    try:
        plane = Plane("control plane", server.url)
        started: list[str] = []
        poller = tail.follow(plane, {}, poll=False, started=started.append)

        first = next(poller)

        assert started == ["the conversation list, polled"]
        assert first[0]["id"] == "conversation-2"  # the first read primed what was already there
    finally:
        server.close()
