"""The console's session cookie in-process: signed with a key derived from the admin token, expiring.

Time is the one fake here: a cookie signed "13 hours ago" is made with itsdangerous's own
signer given an earlier clock, as the middleware would have made it then.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import replace

import itsdangerous
import pytest

from control_plane.app import create_app
from control_plane.console.session import COOKIE, session_key
from control_plane.settings import Settings
from tests.control_plane.local_client import LocalTestClient

TOKEN = "console-session-token"


class SignerAt(itsdangerous.TimestampSigner):
    def __init__(self, key: str, at: float) -> None:
        super().__init__(key)
        self.at = at

    def get_timestamp(self) -> int:
        return int(self.at)


def cookie(key: str, *, at: float, signed_in: bool = True) -> str:
    data = base64.b64encode(json.dumps({"signed_in": signed_in, "csrf": "c"}).encode())
    return SignerAt(key, at).sign(data).decode()


@pytest.fixture
def client(settings: Settings) -> Iterator[LocalTestClient]:
    with LocalTestClient(
        create_app(replace(settings, admin_token=TOKEN, console_session_hours=12))
    ) as test_client:
        yield test_client


def page_status(client: LocalTestClient, value: str) -> int:
    client.cookies.set(COOKIE, value)
    return client.get("/ui/endpoints", follow_redirects=False).status_code


def test_a_fresh_session_opens_pages(client: LocalTestClient) -> None:
    assert page_status(client, cookie(session_key(TOKEN), at=time.time())) == 200


def test_a_session_older_than_its_hours_is_over(client: LocalTestClient) -> None:
    assert page_status(client, cookie(session_key(TOKEN), at=time.time() - 13 * 3600)) == 303


def test_a_session_signed_for_another_token_is_not_one(client: LocalTestClient) -> None:
    assert page_status(client, cookie(session_key("the-old-token"), at=time.time())) == 303


def test_a_session_that_is_not_signed_in_is_not_enough(client: LocalTestClient) -> None:
    assert page_status(client, cookie(session_key(TOKEN), at=time.time(), signed_in=False)) == 303


def test_signing_in_sets_an_httponly_strict_expiring_cookie(client: LocalTestClient) -> None:
    form = client.get("/ui/login").text
    csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    answer = client.post(
        "/ui/login", data={"token": TOKEN, "csrf": csrf, "next": "/ui/processors"}, follow_redirects=False
    )
    assert (answer.status_code, answer.headers["location"]) == (303, "/ui/processors")
    set_cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "max-age=43200" in set_cookie


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/ui/", "/ui//evil.example", "/status"]
)
def test_signing_in_only_leads_back_into_the_console(client: LocalTestClient, target: str) -> None:
    form = client.get("/ui/login").text
    csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    answer = client.post(
        "/ui/login", data={"token": TOKEN, "csrf": csrf, "next": target}, follow_redirects=False
    )
    assert answer.headers["location"] == "/ui/conversations"


def test_signing_in_without_the_forms_csrf_token_is_refused(client: LocalTestClient) -> None:
    client.get("/ui/login")
    answer = client.post("/ui/login", data={"token": TOKEN, "csrf": "guess"}, follow_redirects=False)
    assert answer.status_code == 403
    assert client.get("/ui/endpoints", follow_redirects=False).status_code == 303
