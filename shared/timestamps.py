"""Timestamps as FFAAS shows them: RFC 3339, UTC, microseconds, `Z`.

`utc_now` is on every run's path (four times a run: the conversation, its items and its end), so it
formats the date and time of day once per second and adds the microseconds (~0.4 µs a call instead
of ~2.5 µs through `strftime`); what it returns is `format_timestamp(datetime.now(UTC))`'s text.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

_cached: tuple[int, str] = (-1, "")
"""A second since the epoch and its text up to the dot: one tuple, replaced whole (threads share it)."""


def utc_now() -> str:
    global _cached
    second, micros = divmod(time.time_ns() // 1000, 1_000_000)
    cached_second, prefix = _cached
    if cached_second != second:
        prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _cached = (second, prefix)
    return f"{prefix}.{micros:06d}Z"


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
