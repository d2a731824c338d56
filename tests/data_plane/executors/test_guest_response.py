"""A guest's response headers are checked where its output is parsed: nothing unsendable gets through."""

from __future__ import annotations

import pytest

from data_plane.executors.cgi_response import parse_cgi_response
from data_plane.executors.guest_response import GuestResponse, InvalidGuestResponse
from data_plane.executors.js_response import response_from_result
from shared.errors import GuestError

SENDABLE = [
    ("x-plain", "value"),
    ("x-tab", "a\tb"),
    ("x-empty", ""),
    ("x-obs-text", "caf\xe9 \x80\xff"),  # latin-1 / obs-text: allowed
    ("!#$%&'*+-.^_`|~09az", "token characters"),
]
REFUSED_VALUES = [
    ("\r", "control character ('\\r')"),
    ("\n", "control character ('\\n')"),
    ("\x00", "control character ('\\x00')"),
    ("\x01", "control character ('\\x01')"),
    ("\x1b", "control character ('\\x1b')"),
    ("\x7f", "control character ('\\x7f')"),
    ("€", "outside latin-1 ('€')"),
    ("☃", "outside latin-1 ('☃')"),
]
REFUSED_NAMES = ["x bad", "x\rbad", "x\nbad", "", "x:y", "x(y)", "é", 'x"y', "x\x00"]


def test_sendable_headers_are_kept_as_they_are() -> None:
    response = GuestResponse(200, tuple(SENDABLE), b"")
    assert response.headers == tuple(SENDABLE)


@pytest.mark.parametrize(("value", "why"), REFUSED_VALUES, ids=[repr(value) for value, _ in REFUSED_VALUES])
def test_a_value_that_cannot_be_sent_is_refused_naming_the_header(value: str, why: str) -> None:
    with pytest.raises(InvalidGuestResponse) as refused:
        GuestResponse(200, (("x-good", "ok"), ("x-bad", f"a{value}b")), b"")
    assert refused.value.status == 500
    assert "the response header 'x-bad' has" in refused.value.message
    assert why in refused.value.message
    assert "at offset 1" in refused.value.message
    assert refused.value.detail == f"refused response header: name 'x-bad', value {f'a{value}b'!r}"


@pytest.mark.parametrize("name", REFUSED_NAMES, ids=repr)
def test_a_name_that_is_not_a_token_is_refused(name: str) -> None:
    with pytest.raises(InvalidGuestResponse) as refused:
        GuestResponse(200, ((name, "v"),), b"")
    assert f"the response header name {name!r} is not a valid HTTP header name" in refused.value.message
    assert "RFC 9110 token" in refused.value.message


def test_cgi_value_with_a_bare_cr_is_refused_when_parsed() -> None:
    with pytest.raises(InvalidGuestResponse, match="'x-split'.*control character"):
        parse_cgi_response(b"Content-Type: text/plain\nX-Split: one\rtwo\n\nbody")


def test_cgi_value_with_utf8_bytes_is_sent_as_they_are() -> None:
    response = parse_cgi_response("Content-Type: text/plain\nX-Name: Zoë\n\nbody".encode())
    assert ("x-name", "Zoë".encode().decode("latin-1")) in response.headers


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"x bad": "1"}, "header name 'x bad'"),
        ({"x-bad\r\ninjected": "1"}, "header name 'x-bad\\r\\ninjected'"),
        ({"x-bad": "1\r\ninjected: 2"}, "header 'x-bad' has a control character"),
        ({"x-euro": "€"}, "header 'x-euro' has a character outside latin-1"),
        ({"x-list": ["fine", "not\nfine"]}, "header 'x-list' has a control character"),
    ],
)
def test_processor_headers_are_checked(headers: dict[str, object], fragment: str) -> None:
    result = {"has_value": True, "value": {"code": 200, "headers": headers, "body": "x"}}
    with pytest.raises(InvalidGuestResponse) as refused:
        response_from_result(result, b"")
    assert fragment in refused.value.message


def test_a_data_url_body_that_is_not_base64_is_a_guest_error() -> None:
    result = {"responded": {"body": "data:application/octet-stream;base64,abc"}}
    with pytest.raises(GuestError, match="is not valid base64"):
        response_from_result(result, b"")


def test_a_data_url_body_is_decoded() -> None:
    result = {"responded": {"body": "data:application/octet-stream;base64,/wA="}}
    assert response_from_result(result, b"").body == b"\xff\x00"
