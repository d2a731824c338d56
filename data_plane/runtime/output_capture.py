"""Capturing a guest's stdout and stderr with a hard size cap, cheaply.

wasmtime's custom output callbacks cost ~200 µs per run; a file costs nothing
measurable.  Each run gets two fresh anonymous memory files (`memfd`), which
wasmtime opens by their `/proc/self/fd/N` path.  Nothing is left on disk if the
process dies, and no run can see or disturb another run's output: the files
are never reused (reusing them per thread let a run be charged with the
previous run's overflow, found under load).

A file cannot refuse writes, so the cap is enforced from outside:
`enforce_caps` (called by the epoch ticker every tick) cuts every active
capture back to its cap.  Cut pages are freed, so memory held by a runaway
writer stays bounded by the cap plus what it writes in one tick, and the
capture remembers that it overflowed.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass


@dataclass
class Captured:
    data: bytes
    overflowed: bool


class CaptureFile:
    def __init__(self, name: str, cap: int) -> None:
        self.fd = os.memfd_create(name, os.MFD_CLOEXEC)
        self.path = f"/proc/self/fd/{self.fd}"
        self.cap = cap
        self.overflowed = False

    def enforce(self) -> None:
        if os.fstat(self.fd).st_size > self.cap:
            os.ftruncate(self.fd, self.cap)
            self.overflowed = True

    def collect(self) -> Captured:
        size = os.fstat(self.fd).st_size
        return Captured(os.pread(self.fd, min(size, self.cap), 0), self.overflowed or size > self.cap)


class RunCapture:
    """One run's stdout and stderr files: watched while the run is active, closed afterwards."""

    def __init__(self, captures: OutputCaptures, stdout_cap: int, stderr_cap: int) -> None:
        self._captures = captures
        self.stdout = CaptureFile("ffaas-stdout", stdout_cap)
        self.stderr = CaptureFile("ffaas-stderr", stderr_cap)

    def __enter__(self) -> RunCapture:
        self._captures._activate(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._captures._deactivate(self)

    def close(self) -> None:
        with self._captures._lock:  # never while the ticker is enforcing on these fds
            os.close(self.stdout.fd)
            os.close(self.stderr.fd)


class OutputCaptures:
    """The captures of the runs currently writing, for the ticker to keep within their caps."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: set[RunCapture] = set()

    def open(self, stdout_cap: int, stderr_cap: int) -> RunCapture:
        return RunCapture(self, stdout_cap, stderr_cap)

    def enforce_caps(self) -> None:
        with self._lock:
            for capture in self._active:
                capture.stdout.enforce()
                capture.stderr.enforce()

    def _activate(self, capture: RunCapture) -> None:
        with self._lock:
            self._active.add(capture)

    def _deactivate(self, capture: RunCapture) -> None:
        with self._lock:
            self._active.discard(capture)
