"""Capturing a guest's stdout and stderr with a hard size cap, cheaply.

wasmtime's custom output callbacks cost ~200 µs per run; a file costs nothing
measurable.  Each worker thread owns two anonymous memory files (`memfd`),
reused run after run; wasmtime opens them by their `/proc/self/fd/N` path, which
truncates them at the start of each run.  Nothing is left on disk if the
process dies.

A file cannot refuse writes, so the cap is enforced from outside: `enforce_caps`
(called by the epoch ticker every tick) cuts any active capture back to its cap.
Cut pages are freed, so memory held by a runaway writer stays bounded by the cap
plus what it writes in one tick, and the capture remembers that it overflowed.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass


@dataclass
class Captured:
    data: bytes
    overflowed: bool


class _CaptureFile:
    def __init__(self, name: str) -> None:
        self.fd = os.memfd_create(name, os.MFD_CLOEXEC)
        self.path = f"/proc/self/fd/{self.fd}"
        self.cap = 0
        self.overflowed = False

    def enforce(self) -> None:
        if os.fstat(self.fd).st_size > self.cap:
            os.ftruncate(self.fd, self.cap)
            self.overflowed = True

    def collect(self) -> Captured:
        size = os.fstat(self.fd).st_size
        overflowed = self.overflowed or size > self.cap
        data = os.pread(self.fd, min(size, self.cap), 0)
        os.ftruncate(self.fd, 0)
        return Captured(data, overflowed)

    def close(self) -> None:
        os.close(self.fd)


class CaptureSlot:
    """One thread's stdout and stderr files, armed for the duration of one run."""

    def __init__(self, captures: OutputCaptures) -> None:
        self._captures = captures
        self.stdout = _CaptureFile("ffaas-stdout")
        self.stderr = _CaptureFile("ffaas-stderr")

    def __enter__(self) -> CaptureSlot:
        self.stdout.overflowed = self.stderr.overflowed = False
        self._captures._activate(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._captures._deactivate(self)

    def arm(self, stdout_cap: int, stderr_cap: int) -> None:
        self.stdout.cap = stdout_cap
        self.stderr.cap = stderr_cap


class OutputCaptures:
    """Per-thread capture slots and the set of runs currently writing."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._active: set[CaptureSlot] = set()
        self._all: list[CaptureSlot] = []

    def slot(self) -> CaptureSlot:
        slot: CaptureSlot | None = getattr(self._local, "slot", None)
        if slot is None:
            slot = CaptureSlot(self)
            self._local.slot = slot
            with self._lock:
                self._all.append(slot)
        return slot

    def enforce_caps(self) -> None:
        with self._lock:
            active = list(self._active)
        for slot in active:
            slot.stdout.enforce()
            slot.stderr.enforce()

    def close(self) -> None:
        with self._lock:
            for slot in self._all:
                slot.stdout.close()
                slot.stderr.close()
            self._all.clear()

    def _activate(self, slot: CaptureSlot) -> None:
        with self._lock:
            self._active.add(slot)

    def _deactivate(self, slot: CaptureSlot) -> None:
        with self._lock:
            self._active.discard(slot)
