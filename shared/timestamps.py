"""Timestamps as FFAAS shows them: RFC 3339, UTC, microseconds, `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> str:
    return format_timestamp(datetime.now(UTC))


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
