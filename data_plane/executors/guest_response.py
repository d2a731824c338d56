"""What a guest answered, ready to become the HTTP response."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GuestResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    """Lower-case names, in the guest's order; repeated names (set-cookie) are kept."""
    body: bytes
