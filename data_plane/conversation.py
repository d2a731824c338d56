"""Building the conversation of one run: the incoming request, logs, outbound traffic, the response.

Items are appended in the order things happen; `finish` seals the record.  The
same builder serves every executor.

Invariants:
- A record holds at most `max_items` items (FFAAS_MAX_AUDIT_ITEMS): the incoming request
  and the final response are always kept; past the bound, further log, outbound request
  and outbound response items are left out and counted (`audit_items_dropped`).  An
  outbound response whose request was left out is left out too, so every kept response
  answers a kept request.
- `finish` does not change the items: a run may be finished again (by the dispatcher's
  catch-all, after an unexpected error) and the second record replaces the first.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from data_plane.incoming_request import IncomingRequest
from shared.conversations import (
    AuditItem,
    ConversationRecord,
    RunOutcome,
    captured_body,
    headers_payload,
    new_id,
    new_item,
)
from shared.timestamps import utc_now


class Conversation:
    def __init__(
        self,
        incoming: IncomingRequest,
        *,
        body_cap: int,
        max_items: int,
        endpoint_id: str | None = None,
        deploy_id: str | None = None,
        module_hash: str | None = None,
        request_processor_id: str | None = None,
        processor_version_id: str | None = None,
        replay_of: str | None = None,
        replay_mode: str | None = None,
    ) -> None:
        self.id = new_id()
        self.created_at = utc_now()
        self._started = time.perf_counter()
        self._body_cap = body_cap
        self._room = max(max_items, 2) - 2
        """Items left for logs and outbound traffic (the request and final response are kept apart)."""
        self.dropped = 0
        self._dropped_requests: set[str] = set()
        self._version = incoming.version
        self._identity = {
            "endpoint_id": endpoint_id,
            "deploy_id": deploy_id,
            "module_hash": module_hash,
            "request_processor_id": request_processor_id,
            "processor_version_id": processor_version_id,
            "replay_of": replay_of,
            "replay_mode": replay_mode,
        }
        self.request_item = new_item(
            "request",
            {
                "method": incoming.method,
                "path": incoming.path,
                "query": incoming.query,
                "headers": headers_payload(incoming.headers),
                **captured_body(incoming.body, body_cap),
                "version": incoming.version,
            },
            inc=0,
        )
        self.items: list[AuditItem] = [self.request_item]

    def log(self, text: str) -> None:
        if self._room <= 0:
            self.dropped += 1
            return
        self._room -= 1
        self.items.append(new_item("log", text))

    def log_stderr(self, stderr: bytes, *, truncated_at: int | None = None) -> None:
        """One `log` item per line the guest wrote to stderr."""
        lines = stderr.decode("utf-8", errors="replace").splitlines()
        if truncated_at is not None:
            lines.append(f"[ffaas] stderr cut at {truncated_at} bytes (FFAAS_MAX_LOG_BYTES)")
        kept = max(min(len(lines), self._room), 0)
        for line in lines[:kept]:
            self.log(line)
        self.dropped += len(lines) - kept

    def outbound_request(
        self, *, inc: int, method: str, url: str, headers: list[tuple[str, str]], body: bytes
    ) -> AuditItem:
        """Record an outbound request (before it is sent); `inc` counts them from 1."""
        parts = urlsplit(url)
        item = new_item(
            "request",
            {
                "method": method,
                "url": url,
                "path": parts.path or "/",
                "query": parts.query,
                "headers": headers_payload(headers),
                **captured_body(body, self._body_cap),
                "version": "HTTP/1.1",
            },
            inc=inc,
        )
        self._keep(item)
        return item

    def outbound_response(
        self, request: AuditItem, *, status: int, headers: tuple[tuple[str, str], ...], body: bytes
    ) -> None:
        payload = {
            "code": status,
            "headers": headers_payload(headers),
            **captured_body(body, self._body_cap),
            "version": "HTTP/1.1",
        }
        self._keep(new_item("response", payload, request=request.id))

    def outbound_failure(self, request: AuditItem, error: str) -> None:
        """The outbound request got no response: the `response` item says why."""
        self._keep(new_item("response", {"error": error}, request=request.id))

    def _keep(self, item: AuditItem) -> None:
        if self._room <= 0 or item.request in self._dropped_requests:
            self.dropped += 1
            if item.kind == "request":
                self._dropped_requests.add(item.id)
            return
        self._room -= 1
        self.items.append(item)

    def finish(
        self,
        *,
        status: int,
        headers: list[tuple[str, str]] | tuple[tuple[str, str], ...],
        body: bytes,
        outcome: RunOutcome,
        error: str | None = None,
        error_detail: str | None = None,
        duration_ms: float | None = None,
    ) -> ConversationRecord:
        """The record: the items so far and the final response item (the items are not changed)."""
        payload: dict[str, Any] = {
            "code": status,
            "headers": headers_payload(headers),
            **captured_body(body, self._body_cap),
            "version": self._version,
        }
        final = new_item("response", payload, request=self.request_item.id)
        elapsed_ms = (time.perf_counter() - self._started) * 1000
        return ConversationRecord(
            id=self.id,
            created_at=self.created_at,
            finished_at=utc_now(),
            duration_ms=round(duration_ms if duration_ms is not None else elapsed_ms, 3),
            outcome=outcome,
            status=status,
            error=error,
            error_detail=error_detail,
            items=[*self.items, final],
            audit_items_dropped=self.dropped,
            **self._identity,
        )
