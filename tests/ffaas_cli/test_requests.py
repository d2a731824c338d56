"""The curl-like options of a run, and names where ids are expected (no server needed)."""

from __future__ import annotations

import pytest

from ffaas_cli import names, run_request
from ffaas_cli.failures import Failure, UsageFailure


def test_a_body_makes_the_default_method_post_and_headers_are_parsed() -> None:
    assert run_request.build(None, None, None) == run_request.RunRequest("GET", [], None)
    built = run_request.build("hi", None, ["X-A: 1", "x-b:2 "])
    assert built == run_request.RunRequest("POST", [("X-A", "1"), ("x-b", "2")], b"hi")
    assert run_request.build("hi", "put", None).method == "PUT"


@pytest.mark.parametrize("header", ["no colon", ": empty name", "two words: x"])
def test_a_malformed_header_is_bad_usage(header: str) -> None:
    with pytest.raises(UsageFailure, match="-H wants 'Name: value'"):
        run_request.build(None, None, [header])


def test_a_body_is_text_or_a_data_url() -> None:
    assert run_request.body_text("é".encode()) == "é"
    assert run_request.body_text(b"\xff") == "data:application/octet-stream;base64,/w=="


def test_a_unique_name_is_its_id_and_anything_else_is_refused() -> None:
    listed = [{"id": "a", "name": "one"}, {"id": "b", "name": "two"}, {"id": "c", "name": "two"}]

    assert names.pick("endpoint", "one", listed) == "a"
    with pytest.raises(Failure, match="2 endpoints are named 'two': b, c"):
        names.pick("endpoint", "two", listed)
    with pytest.raises(Failure, match="no endpoint is named 'three'"):
        names.pick("endpoint", "three", listed)
    assert names.looks_like_id("0B8E5C1A-1111-4222-8333-944455556666")
    assert not names.looks_like_id("echo")
