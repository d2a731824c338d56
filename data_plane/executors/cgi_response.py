"""Parsing a CGI response (RFC 3875 section 6) from a guest's stdout, as WAGI does.

- Header lines, a blank line (LF or CRLF), then the body.
- `Status: <code> [reason]` sets the status; `Location:` without `Status:` is a 302.
- Output that does not start with a header block is the body, with status 200.
- Headers that HTTP framing owns (content-length, transfer-encoding, connection)
  are dropped: the server sets them for the body actually sent.
- Header values must be sendable (`GuestResponse` checks them: no control characters
  but tab); a module that writes a bare CR or another control character in a value gets
  `InvalidGuestResponse`, answered 500 with outcome `invalid_response`.
"""

from __future__ import annotations

import re

from data_plane.executors.guest_response import GuestResponse
from shared.errors import GuestError

_HEADER_LINE = re.compile(rb"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$")
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "status"})


def parse_cgi_response(stdout: bytes) -> GuestResponse:
    head, body = _split_header_block(stdout)
    if head is None:
        return GuestResponse(200, (("content-type", _default_content_type(stdout)),), stdout)
    headers: list[tuple[str, str]] = []
    status: int | None = None
    for line in head:
        match = _HEADER_LINE.match(line)
        assert match is not None, "checked by _split_header_block"
        name, value = match.group(1).decode("latin-1").lower(), match.group(2).decode("latin-1")
        if name == "status":
            status = _parse_status(value)
        if name not in _FRAMING_HEADERS:
            headers.append((name, value))
    if status is None:
        status = 302 if any(name == "location" for name, _ in headers) else 200
    return GuestResponse(status, tuple(headers), body)


def _split_header_block(stdout: bytes) -> tuple[list[bytes] | None, bytes]:
    """The header lines and the body, or (None, stdout) when there is no header block."""
    end = _header_block_end(stdout)
    if end is None:
        return None, stdout
    separator_length = 4 if stdout[end : end + 4] == b"\r\n\r\n" else 2
    lines = [line.rstrip(b"\r") for line in stdout[:end].split(b"\n")]
    if not all(_HEADER_LINE.match(line) for line in lines):
        return None, stdout
    return lines, stdout[end + separator_length :]


def _header_block_end(stdout: bytes) -> int | None:
    candidates = [index for index in (stdout.find(b"\r\n\r\n"), stdout.find(b"\n\n")) if index > 0]
    return min(candidates) if candidates else None


def _parse_status(value: str) -> int:
    code = value.split(" ", 1)[0]
    if not (code.isdigit() and len(code) == 3 and 100 <= int(code) <= 599):
        raise GuestError(f"the module wrote an invalid CGI Status header: {value[:40]!r}")
    return int(code)


def _default_content_type(body: bytes) -> str:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain; charset=utf-8"
