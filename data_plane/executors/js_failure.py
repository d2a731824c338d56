"""How a processor run that produced no result is answered, the same on both runtimes.

Every message names what went wrong and, for a limit, the setting; the JS error's own line is in
the message and its stack in the conversation's `error_detail`.
"""

from __future__ import annotations

from shared.conversations import RunOutcome
from shared.errors import GuestError, GuestTimeout, ServiceError, Unavailable

MIB = 1 << 20
STACK_EXHAUSTED = "RangeError: Maximum call stack size exceeded"


class JsFailure(Exception):
    """The error to answer, the conversation's outcome and its detail."""

    def __init__(self, error: ServiceError, outcome: RunOutcome, detail: str | None = None) -> None:
        super().__init__(error.message)
        self.error, self.outcome, self.detail = error, outcome, detail


def timed_out(timeout_ms: int) -> JsFailure:
    return JsFailure(
        GuestTimeout(f"run exceeded {timeout_ms} ms (FFAAS_RUN_TIMEOUT_MS)"), RunOutcome.TIMED_OUT
    )


def out_of_memory(what: str, max_memory_bytes: int, detail: str) -> JsFailure:
    """`what` is the limit as the runtime has it: V8's heap, or the wasm engine's whole memory."""
    message = f"run exceeded its {what} limit of {max_memory_bytes / MIB:.1f} MiB (FFAAS_MAX_MEMORY_BYTES)"
    return JsFailure(GuestError(message), RunOutcome.OUT_OF_MEMORY, detail)


def syntax_error(line: str, detail: str) -> JsFailure:
    return JsFailure(
        GuestError(f"the processor's code does not parse: {line}"), RunOutcome.SYNTAX_ERROR, detail
    )


def threw(line: str, detail: str, outcome: RunOutcome = RunOutcome.THREW) -> JsFailure:
    return JsFailure(GuestError(f"the processor failed: {line}"), outcome, detail)


def engine_failed(reason: str, detail: str, outcome: RunOutcome = RunOutcome.ENGINE_ERROR) -> JsFailure:
    return JsFailure(GuestError(reason), outcome, detail)


def overloaded(runtime: str, max_runs: int, why: str, settings: str) -> JsFailure:
    """Every run slot of `runtime` busy and the queue full (or the wait past the deadline): 503."""
    message = f"all {max_runs} {runtime} processor runs are busy {why} ({settings}); try again shortly"
    return JsFailure(Unavailable(message, headers={"Retry-After": "1"}), RunOutcome.OVERLOADED)
