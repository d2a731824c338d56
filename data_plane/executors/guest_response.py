"""What a guest answered, checked against the rules of HTTP so that sending it cannot fail.

Invariant: a `GuestResponse` exists only if its headers can be sent as they are.  Every name is
an RFC 9110 token; every value is latin-1 text with no control character but tab (CR, LF, NUL,
DEL and the other C0 controls are refused; bytes 0x80-0xFF are obs-text and allowed, so a CGI
guest may still write UTF-8 bytes).  The parsers of guest output build it, so a broken response
is refused where the guest's output enters (`InvalidGuestResponse`, answered 500 with outcome
`invalid_response`), never at send time after the conversation was recorded.

Cost: two precompiled regex calls per header (measured with timeit: ~0.4 µs per header, ~1.2 µs
for a response with 3 headers).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from shared.errors import GuestError

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSENDABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")
"""In a value: a control character other than tab, or a character outside latin-1."""
SHOWN_CHARS = 60


class InvalidGuestResponse(GuestError):
    """The guest's response breaks the rules of HTTP; the message names the header, `detail` shows it
    in full (for the conversation's `error_detail`)."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True)
class GuestResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    """Lower-case names, in the guest's order; repeated names (set-cookie) are kept."""
    body: bytes

    def __post_init__(self) -> None:
        check_headers(self.headers)


def check_headers(headers: Iterable[tuple[str, str]]) -> None:
    """Raise `InvalidGuestResponse` for the first header that cannot be sent as it is."""
    for name, value in headers:
        if _TOKEN.fullmatch(name) is None:
            raise InvalidGuestResponse(
                f"the response header name {_shown(name)} is not a valid HTTP header name "
                "(RFC 9110 token: letters, digits and !#$%&'*+-.^_`|~ only)",
                f"refused response header: name {name!r}, value {value!r}"[:1000],
            )
        unsendable = _UNSENDABLE.search(value)
        if unsendable is not None:
            char = unsendable.group()
            why = (
                f"a character outside latin-1 ({char!r})"
                if ord(char) > 0xFF
                else f"a control character ({char!r}); CR, LF, NUL and other controls are not allowed"
            )
            raise InvalidGuestResponse(
                f"the response header {_shown(name)} has {why} in its value at offset {unsendable.start()}",
                f"refused response header: name {name!r}, value {value!r}"[:1000],
            )


def _shown(name: str) -> str:
    shown = repr(name[:SHOWN_CHARS])
    return shown + "..." if len(name) > SHOWN_CHARS else shown
