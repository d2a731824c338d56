"""How many outbound requests a run may make, how many may be in flight, and the hop count that
stops a processor from calling itself (through its own data plane or any other) without end.

Both runtimes' processors reach the network only through `executors.js_host.RunHost`, which asks
a run's `RunOutbound` before it sends anything.

Invariants:
- A run makes at most `max_requests` outbound requests (FFAAS_MAX_OUTBOUND_REQUESTS); every
  later one is refused before anything is sent, with a message naming the limit and its setting.
- At most `max_in_flight_per_run` of one run's requests (FFAAS_MAX_OUTBOUND_IN_FLIGHT_PER_RUN) and
  `max_in_flight` of the whole plane's (FFAAS_MAX_OUTBOUND_IN_FLIGHT) are being sent at once, so
  the response bodies held outside any guest's memory stay bounded.  A request waits for its
  slot, first come first served, for as long as its run lasts: the run's deadline cancels the wait.
- Every outbound request carries `FH-Hops: n+1`, n being the hop count of the run's incoming
  request (0 without one); a header of that name the processor set is replaced, so no processor
  can reset the count.  A run at hop n refuses to send when n+1 exceeds `max_hops`
  (FFAAS_MAX_HOPS), and a data plane refuses an incoming run past it (508, `loop_detected`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

HOPS_HEADER = "FH-Hops"
MAX_REQUESTS_SETTING = "FFAAS_MAX_OUTBOUND_REQUESTS"
MAX_HOPS_SETTING = "FFAAS_MAX_HOPS"


def incoming_hops(headers: Iterable[tuple[str, str]]) -> int:
    """The hop count an incoming request carries: the largest whole `FH-Hops` value, else 0."""
    counts = [
        int(value.strip())
        for name, value in headers
        if name.lower() == "fh-hops" and value.strip().isdigit() and len(value.strip()) <= 9
    ]
    return max(counts, default=0)


def too_many_hops(hops: int, max_hops: int) -> str | None:
    """Why an incoming run at hop `hops` is refused as a loop; None when it may run."""
    if hops <= max_hops:
        return None
    return (
        f"loop detected: the request has made {hops} hops between processors ({HOPS_HEADER}), "
        f"more than the limit of {max_hops} ({MAX_HOPS_SETTING})"
    )


@dataclass(frozen=True)
class Refusal:
    """Why a request is not sent; `loop` when the hop limit refused it, `record` when the
    conversation should show it (the first refusal for the count limit, every other one)."""

    message: str
    loop: bool
    record: bool


class OutboundLimits:
    """The plane's outbound limits, shared by every run of the process."""

    def __init__(
        self, *, max_requests: int, max_in_flight_per_run: int, max_in_flight: int, max_hops: int
    ) -> None:
        self.max_requests = max_requests
        self.max_in_flight_per_run = max_in_flight_per_run
        self.max_in_flight = max_in_flight
        self.max_hops = max_hops
        self._plane_slots = asyncio.Semaphore(max_in_flight)
        self.in_flight = 0
        """Requests being sent right now, on the whole plane (for `/status`)."""
        self.waiting = 0
        """Requests waiting for an in-flight slot of their run or of the plane (for `/status`)."""
        self.refused = 0
        """Requests refused by a count or hop limit since start (for `/status`)."""

    def for_run(self, hops: int) -> RunOutbound:
        """The limits of one run whose incoming request was at hop `hops`."""
        return RunOutbound(self, hops)

    @contextlib.asynccontextmanager
    async def _slot(self, run_slots: asyncio.Semaphore) -> AsyncIterator[None]:
        self.waiting += 1
        try:
            await run_slots.acquire()
            try:
                await self._plane_slots.acquire()
            except BaseException:
                run_slots.release()
                raise
        finally:
            self.waiting -= 1
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._plane_slots.release()
            run_slots.release()


class RunOutbound:
    """One run's outbound requests: counted, numbered, and sent within the in-flight bounds."""

    def __init__(self, limits: OutboundLimits, hops: int) -> None:
        self._limits = limits
        self.hops = hops
        self.made = 0
        self._run_slots = asyncio.Semaphore(limits.max_in_flight_per_run)

    def refusal(self) -> Refusal | None:
        """Count one more request of the run; why it must not be sent, or None."""
        self.made += 1
        limits = self._limits
        if self.made > limits.max_requests:
            limits.refused += 1
            message = (
                f"refused: a run may make at most {limits.max_requests} outbound requests "
                f"({MAX_REQUESTS_SETTING}); later ones are refused without being recorded"
            )
            return Refusal(message, loop=False, record=self.made == limits.max_requests + 1)
        if self.hops + 1 > limits.max_hops:
            limits.refused += 1
            message = (
                f"refused: this run is hop {self.hops} of a chain of requests between processors "
                f"({HOPS_HEADER}); another would pass the limit of {limits.max_hops} hops "
                f"({MAX_HOPS_SETTING}): the processor is most likely calling itself"
            )
            return Refusal(message, loop=True, record=True)
        return None

    def headers(self, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """The headers to send: the processor's, with our hop count in place of any it set."""
        sent = [(name, value) for name, value in headers if name.lower() != "fh-hops"]
        sent.append((HOPS_HEADER, str(self.hops + 1)))
        return sent

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot of the run's and of the plane's in-flight requests while sending one."""
        async with self._limits._slot(self._run_slots):
            yield
