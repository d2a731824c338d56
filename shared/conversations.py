"""Conversation records: what the data plane sends on the Redis stream for every run.

One stream entry (`Keys.conversations`, field `r`) carries one whole
conversation, so the control plane ingests a run completely or not at all.
Audit items are in the order they happened and already have the API's shape
(SPEC.md "Audit items"): the control plane stores them as they are.

Bodies are captured with `captured_body`: a UTF-8 body is a string, any other
is a `data:application/octet-stream;base64,...` URL; a body over the capture cap
is cut, and the payload then says so (`body_truncated`, `body_bytes`).

How a run ended is one of `RunOutcome`, the complete list (its wire value is the
member's string); README's outcome table is `outcome_table()`, held equal by a test.

A record travels as a versioned msgpack map (`shared.wire`): a reader ignores fields
it does not know, and `unpack` raises `UnreadableRecord` (a `ValueError`) for a record
it cannot read.
"""

from __future__ import annotations

import base64
import os
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared import wire
from shared.timestamps import utc_now

STREAM_FIELD = b"r"
DATA_URL_PREFIX = "data:application/octet-stream;base64,"
"""How a captured body that is not UTF-8 starts."""
OPTIONAL_RECORD_FIELDS = ("processor_version_id", "replay_of", "replay_mode")
"""Fields added after the first record format: left out of a packed record when None."""


class RunOutcome(StrEnum):
    """How a run ended: every value a conversation's `outcome` can hold (the wire value is the string).

    `description` is the outcome's row in README's outcome table (`outcome_table`)."""

    COMPLETED = "completed"
    TIMED_OUT = "timed_out"
    TRAPPED = "trapped"
    EXITED_NONZERO = "exited_nonzero"
    OUT_OF_MEMORY = "out_of_memory"
    OUTPUT_LIMIT = "output_limit"
    INVALID_RESPONSE = "invalid_response"
    REQUEST_TOO_LARGE = "request_too_large"
    UNUSABLE_MODULE = "unusable_module"
    SYNTAX_ERROR = "syntax_error"
    THREW = "threw"
    NEVER_SETTLED = "never_settled"
    ENGINE_ERROR = "engine_error"
    ENGINE_FAILED = "engine_failed"
    RUNTIME_UNAVAILABLE = "runtime_unavailable"
    UNSUPPORTED_RUNTIME = "unsupported_runtime"
    OVERLOADED = "overloaded"
    LOOP_DETECTED = "loop_detected"
    ERROR = "error"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS: dict[RunOutcome, str] = {
    RunOutcome.COMPLETED: "the guest answered; its response was sent as it was",
    RunOutcome.TIMED_OUT: "the run reached `FFAAS_RUN_TIMEOUT_MS` (504)",
    RunOutcome.TRAPPED: "the module trapped (500; the trap frames are in `error_detail`)",
    RunOutcome.EXITED_NONZERO: "the module exited with a status other than 0 (500)",
    RunOutcome.OUT_OF_MEMORY: "the run reached `FFAAS_MAX_MEMORY_BYTES` (500)",
    RunOutcome.OUTPUT_LIMIT: "the module wrote more than `FFAAS_MAX_RESPONSE_BYTES` (500)",
    RunOutcome.INVALID_RESPONSE: (
        "the guest's response broke the rules of HTTP or of its contract: a header name that is not a "
        "token, a header value with a control character or outside latin-1, a bad status, a `data:` "
        "body that is not base64 (500 naming what is wrong)"
    ),
    RunOutcome.REQUEST_TOO_LARGE: "the request body was over `FFAAS_MAX_REQUEST_BYTES` (413)",
    RunOutcome.UNUSABLE_MODULE: "the endpoint's module could not be loaded on this data plane (500)",
    RunOutcome.SYNTAX_ERROR: "the processor's code does not parse (500)",
    RunOutcome.THREW: "the processor threw or its promise was rejected (500; the stack is in `error_detail`)",
    RunOutcome.NEVER_SETTLED: "the processor's promise can never settle (`wasm` runtime; 500)",
    RunOutcome.ENGINE_ERROR: "the JavaScript engine failed under the run (500)",
    RunOutcome.ENGINE_FAILED: (
        "the V8 engine worker process running the run died (say, V8 aborted on one huge allocation); "
        "it is replaced at once (500)"
    ),
    RunOutcome.RUNTIME_UNAVAILABLE: "the processor's runtime could not be started (500)",
    RunOutcome.UNSUPPORTED_RUNTIME: "the processor names a runtime this data plane lacks (500)",
    RunOutcome.OVERLOADED: (
        "a bounded queue was full: every processor run slot of its runtime was busy and its queue full "
        "(`FFAAS_WASM_PROCESSOR_RUNS`; `FFAAS_V8_RUNS`, `FFAAS_V8_QUEUE`; 503 with `Retry-After`)"
    ),
    RunOutcome.LOOP_DETECTED: (
        "the run is part of a loop between processors: its request arrived with more `FH-Hops` than "
        "`FFAAS_MAX_HOPS`, or the hop limit refused its next request and it then failed (508)"
    ),
    RunOutcome.ERROR: (
        "anything unexpected: still answered (500, internal error) and recorded; the exception is in "
        "`error_detail` and the data plane's log"
    ),
}


def outcome_table() -> str:
    """README's table of outcomes, generated from `RunOutcome` (a test holds README equal to it)."""
    rows = [f"| `{outcome.value}` | {outcome.description} |" for outcome in RunOutcome]
    return "\n".join(["| outcome | the run |", "|---|---|", *rows]) + "\n"


@dataclass(frozen=True)
class AuditItem:
    kind: str
    """"request", "response" or "log"."""
    id: str
    created_at: str
    payload: Any
    inc: int | None = None
    """Only for requests: 0 for the incoming one, 1, 2, ... for outbound ones in order."""
    request: str | None = None
    """Only for responses: the id of the request item answered."""


@dataclass(frozen=True)
class ConversationRecord:
    id: str
    created_at: str
    finished_at: str
    duration_ms: float
    outcome: str
    """How the run ended: a `RunOutcome` value."""
    status: int
    """The HTTP status returned to the caller."""
    error: str | None
    """The error message returned to the caller, if any."""
    error_detail: str | None
    """Guest internals (trap frames, stack traces): kept here, never sent to the caller."""
    endpoint_id: str | None = None
    deploy_id: str | None = None
    module_hash: str | None = None
    request_processor_id: str | None = None
    items: list[AuditItem] = field(default_factory=list)
    processor_version_id: str | None = None
    """For processor runs: the processor version that ran (None for a draft replay)."""
    replay_of: str | None = None
    """For a replay: the id of the conversation it replays."""
    replay_mode: str | None = None
    """For a replay: how its outbound requests were answered, "recorded" or "live"."""
    audit_items_dropped: int = 0
    """Log, outbound request and outbound response items left out past FFAAS_MAX_AUDIT_ITEMS (the
    incoming request and the final response are always kept)."""

    def pack(self) -> bytes:
        return wire.pack(self, omit_if_default=(*OPTIONAL_RECORD_FIELDS, "audit_items_dropped"))

    @classmethod
    def unpack(cls, data: bytes) -> ConversationRecord:
        return wire.unpack(data, cls)


_ID_BATCH = 4096
"""Random bytes read from the OS at once for ids: 256 ids a read (`new_id`)."""
_id_lock = threading.Lock()
_id_bytes = b""
_id_offset = 0


def new_id() -> str:
    """A random (version 4) UUID, as `str(uuid.uuid4())` gives one.

    Every run takes three (its conversation, its request and its response item), so the random bytes
    come from `os.urandom` 256 ids at a time: a call to it per id costs a system call and lets another
    thread take the GIL while the event loop waits to get it back.  The bytes are as random as
    uuid4's; a forked child starts with a fresh batch, so it never repeats its parent's ids."""
    global _id_bytes, _id_offset
    with _id_lock:
        if _id_offset >= len(_id_bytes):
            _id_bytes, _id_offset = os.urandom(_ID_BATCH), 0
        raw = _id_bytes[_id_offset : _id_offset + 16]
        _id_offset += 16
    value = (int.from_bytes(raw) & ~(0xF000 << 64) & ~(0xC000 << 48)) | (0x4000 << 64) | (0x8000 << 48)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _forget_ids() -> None:
    global _id_bytes, _id_offset, _id_lock
    _id_bytes, _id_offset, _id_lock = b"", 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_ids)


def new_item(kind: str, payload: Any, *, inc: int | None = None, request: str | None = None) -> AuditItem:
    return AuditItem(kind=kind, id=new_id(), created_at=utc_now(), payload=payload, inc=inc, request=request)


def captured_body(data: bytes, cap: int) -> dict[str, Any]:
    """`{"body": ...}` for a payload, plus `body_truncated`/`body_bytes` when cut at `cap` bytes."""
    kept = data[:cap]
    try:
        text = kept.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(kept) < len(data) and exc.start >= len(kept) - 3:
            text = kept[: exc.start].decode("utf-8", errors="strict")  # cut inside a multi-byte character
        else:
            text = DATA_URL_PREFIX + base64.b64encode(kept).decode("ascii")
    captured: dict[str, Any] = {"body": text}
    if len(kept) < len(data):
        captured["body_truncated"] = True
        captured["body_bytes"] = len(data)
    return captured


def headers_payload(headers: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> dict[str, list[str]]:
    """Headers as audit items show them: lower-case name -> every value, in order."""
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name.lower(), []).append(value)
    return grouped


def body_from_captured(body: str) -> bytes:
    """The bytes of a captured body (the inverse of `captured_body` for a body that was not cut)."""
    if body.startswith(DATA_URL_PREFIX):
        try:
            return base64.b64decode(body[len(DATA_URL_PREFIX) :], validate=True)
        except ValueError:
            pass  # UTF-8 text that happens to start like a data URL
    return body.encode("utf-8")
