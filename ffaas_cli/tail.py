"""Following new conversations as they are stored: the live stream when the control plane has it,
else the list, polled.

- Stream: `GET /conversation/stream` (Server-Sent Events: `event: conversation`, `id: <cursor>`,
  `data: <one item of the list>`) with the filters. When the connection ends, it is opened
  again with `Last-Event-ID`, so the control plane resumes after the last event received:
  nothing is missed or repeated across reconnections.
- Poll: a control plane without the stream answers 404 there (before the stream route existed,
  `/conversation/stream` was a conversation id), or `--poll` asks for it. The list is read every
  `POLL_INTERVAL_S`: its newest page, and older pages while they hold conversations started less
  than `LOOKBACK_S` before the newest one seen (a run stored late is still found). A conversation
  is shown once: ids already shown are remembered (the newest `SEEN_LIMIT`). What polling cannot
  see: a run stored more than `LOOKBACK_S` after a newer one was; the stream has no such limit.

Both yield `(conversation, json_text)`: the list item, and its JSON as the API sent it (the
event's data) or as it was read (polling).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
from httpx_sse import EventSource

from ffaas_cli.client import Plane
from ffaas_cli.failures import Failure

STREAM_PATH = "/conversation/stream"
POLL_INTERVAL_S = 1.0
LOOKBACK_S = 60.0
PAGE_SIZE = 100
MAX_PAGES_PER_POLL = 20
SEEN_LIMIT = 50_000

Followed = tuple[dict[str, Any], str]


def follow(
    control: Plane, filters: dict[str, str], *, poll: bool, started: Callable[[str], None]
) -> Iterator[Followed]:
    """New conversations matching `filters`, as they come, forever; `started(how)` is called once the
    first connection (or the first read of the list) is made, so runs made from then on are seen."""
    if not poll:
        streamed = stream(control, filters, started)
        first = next(streamed, None)
        if first is not None:  # None: the control plane has no stream
            yield first
            yield from streamed
            return
    yield from ListPoller(control, filters).follow(started)


def stream(control: Plane, filters: dict[str, str], started: Callable[[str], None]) -> Iterator[Followed]:
    """The conversation stream, reopened with Last-Event-ID when it ends; nothing at all (an empty
    iterator) when the control plane has no stream route."""
    last_event_id: str | None = None
    opened = False
    while True:
        headers = {"accept": "text/event-stream", "cache-control": "no-store"}
        if last_event_id is not None:
            headers["last-event-id"] = last_event_id
        timeout = httpx.Timeout(None, connect=5.0)  # quiet streams are fine; heartbeats keep proxies open
        with control.stream("GET", STREAM_PATH, params=filters, headers=headers, timeout=timeout) as response:
            if not opened and response.status_code == 404:
                return
            if response.status_code >= 400:
                response.read()
                raise Failure(control.refusal(response))
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                raise Failure(f"{control.url(STREAM_PATH)} did not answer an event stream")
            if not opened:
                opened = True
                started("the conversation stream")
            for event in EventSource(response).iter_sse():
                if event.event != "conversation" or not event.data:
                    continue
                if event.id:
                    last_event_id = event.id
                yield json.loads(event.data), event.data


class ListPoller:
    def __init__(
        self, control: Plane, filters: dict[str, str], *, interval_s: float = POLL_INTERVAL_S
    ) -> None:
        self.control = control
        self.filters = filters
        self.interval_s = interval_s
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.newest: str | None = None

    def follow(self, started: Callable[[str], None]) -> Iterator[Followed]:
        for conversation in self._page(None)["conversations"]:
            self._remember(conversation)
        started("the conversation list, polled")
        while True:
            time.sleep(self.interval_s)  # the polling period, not an ordering of events
            for conversation in self.poll():
                yield conversation, json.dumps(conversation)

    def poll(self) -> list[dict[str, Any]]:
        """Conversations not shown yet, oldest first."""
        horizon = self._horizon()
        collected: list[dict[str, Any]] = []
        before = None
        for _ in range(MAX_PAGES_PER_POLL):
            page = self._page(before)
            collected.extend(page["conversations"])
            oldest = min((c["created_at"] for c in page["conversations"]), default=None)
            if page["next"] is None or oldest is None or horizon is None or oldest < horizon:
                break
            before = page["next"]
        fresh = [c for c in collected if c["id"] not in self.seen]
        for conversation in fresh:
            self._remember(conversation)
        return sorted(fresh, key=lambda c: (c["created_at"], c["id"]))

    def _page(self, before: str | None) -> dict[str, Any]:
        params: dict[str, str | int] = {**self.filters, "limit": PAGE_SIZE}
        if before is not None:
            params["before"] = before
        page: dict[str, Any] = self.control.json("GET", "/conversation", params=params)
        return page

    def _remember(self, conversation: dict[str, Any]) -> None:
        self.seen[conversation["id"]] = None
        while len(self.seen) > SEEN_LIMIT:
            self.seen.popitem(last=False)
        if self.newest is None or conversation["created_at"] > self.newest:
            self.newest = conversation["created_at"]

    def _horizon(self) -> str | None:
        if self.newest is None:
            return None
        moment = datetime.fromisoformat(self.newest.replace("Z", "+00:00")) - timedelta(seconds=LOOKBACK_S)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
