"""Browser writes from another origin are refused; JSON bodies must say they are JSON.

In-process, on an admin API with no token (the loopback default), where a forged request
would otherwise succeed. The headers are the ones browsers send (`Origin` on cross-origin
writes, `Sec-Fetch-Site` on every request); the same attack through a real Chromium is
`tests/e2e/console/test_cross_site_writes.py`.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from control_plane.app import create_app
from control_plane.settings import Settings
from tests.control_plane.conftest import create_endpoint
from tests.control_plane.local_client import LocalTestClient

OWN_ORIGIN = "http://127.0.0.1"
"""The LocalTestClient's base URL: what a page of this control plane would send as its Origin."""


def names(client: LocalTestClient) -> list[str]:
    return [endpoint["name"] for endpoint in client.get("/endpoint").json()]


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example"},
        {"origin": "http://127.0.0.1:8080"},  # another port of the same host: another origin
        {"origin": "null"},  # a sandboxed frame or a file
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},  # another origin of the same site (another local port)
        {"origin": "http://evil.example", "sec-fetch-site": "cross-site"},
    ],
)
def test_a_cross_origin_browser_write_is_refused_before_anything_happens(
    client: LocalTestClient, headers: dict[str, str]
) -> None:
    response = client.post("/endpoint", json={"name": "forged"}, headers=headers)

    assert response.status_code == 403, response.text
    assert set(response.json()) == {"code", "message"}
    assert "write refused" in response.json()["message"]
    assert "forged" not in names(client)


def test_the_refusal_names_the_page_and_this_control_plane(client: LocalTestClient) -> None:
    response = client.post("/endpoint", json={"name": "x"}, headers={"origin": "http://evil.example"})

    assert response.json() == {
        "code": 403,
        "message": "cross-origin write refused: a page from 'http://evil.example' may not change this "
        "control plane (http://127.0.0.1); use the console at that address, the CLI or curl",
    }


def test_every_write_method_is_guarded_and_reads_are_not(client: LocalTestClient) -> None:
    endpoint = create_endpoint(client)
    foreign = {"origin": "http://evil.example"}

    assert client.put(f"/endpoint/{endpoint['id']}/env", json={"A": "1"}, headers=foreign).status_code == 403
    assert client.delete(f"/endpoint/{endpoint['id']}", headers=foreign).status_code == 403
    assert client.post(f"/endpoint/{endpoint['id']}/rollback", headers=foreign).status_code == 403
    assert client.get(f"/endpoint/{endpoint['id']}", headers=foreign).status_code == 200
    assert client.get(f"/endpoint/{endpoint['id']}/env").json() == {}


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": OWN_ORIGIN, "sec-fetch-site": "same-origin"},  # the console's own scripts
        {"host": "localhost", "origin": "http://LOCALHOST:80"},  # names compare without case
        {"sec-fetch-site": "none"},  # typed by the user
        {},  # curl, the CLI: neither header
    ],
)
def test_same_origin_and_non_browser_writes_go_through(
    client: LocalTestClient, headers: dict[str, str]
) -> None:
    response = client.post("/endpoint", json={"name": "mine"}, headers=headers)

    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "headers",
    [
        {"host": "ffaas.example.com", "origin": "https://ffaas.example.com"},  # TLS ends at a proxy
        {
            "host": "127.0.0.1:3000",
            "x-forwarded-host": "ffaas.example.com",
            "origin": "https://ffaas.example.com",
        },
    ],
)
def test_behind_a_proxy_the_addressed_host_is_the_own_origin(
    settings: Settings, headers: dict[str, str]
) -> None:
    """Served under another name, which needs a token (without one, only loopback names are
    answered: test_rebinding.py)."""
    with LocalTestClient(create_app(replace(settings, admin_token="the-token"))) as client:
        response = client.post(
            "/endpoint", json={"name": "mine"}, headers={**headers, "authorization": "Bearer the-token"}
        )

    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("content_type", "shown"),
    [
        ("text/plain", "got 'text/plain'"),  # what a page can send without a preflight
        ("application/x-www-form-urlencoded", "got 'application/x-www-form-urlencoded'"),  # curl -d
    ],
)
def test_a_json_body_of_another_type_is_415_naming_the_header(
    client: LocalTestClient, content_type: str | None, shown: str
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = client.post("/endpoint", content=b'{"name": "typed"}', headers=headers)

    assert response.status_code == 415, response.text
    message = response.json()["message"]
    assert "Content-Type: application/json" in message and shown in message, message
    assert "typed" not in names(client)


def test_json_with_a_charset_an_unlabelled_body_and_an_empty_body_without_a_type_are_accepted(
    client: LocalTestClient,
) -> None:
    """A program that sends JSON without any Content-Type is not a browser (browsers always label
    a body), so its body is read as JSON."""
    unlabelled = client.post("/endpoint", content=b'{"name": "unlabelled"}')
    assert unlabelled.status_code == 201, unlabelled.text
    endpoint = create_endpoint(client)
    typed = client.put(
        f"/endpoint/{endpoint['id']}/env",
        content=b'{"A": "1"}',
        headers={"content-type": "Application/JSON; charset=utf-8"},
    )
    empty = client.post(f"/endpoint/{endpoint['id']}/rollback")  # no body: no type needed

    assert typed.status_code == 200, typed.text
    assert empty.status_code == 400 and "no deploy to roll back" in empty.json()["message"], empty.text


def csrf_of(page: str) -> str:
    return page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


def test_the_console_signs_in_and_writes_from_its_own_origin_as_before(settings: Settings) -> None:
    browser_headers = {"origin": OWN_ORIGIN, "sec-fetch-site": "same-origin"}
    with LocalTestClient(create_app(replace(settings, admin_token="the-token"))) as client:
        login = client.get("/ui/login")
        signed_in = client.post(
            "/ui/login",
            data={"token": "the-token", "csrf": csrf_of(login.text), "next": "/ui/endpoints"},
            headers=browser_headers,
            follow_redirects=False,
        )
        assert signed_in.status_code == 303, signed_in.text
        token = csrf_of(client.get("/ui/endpoints").text)

        made = client.post(
            "/endpoint", json={"name": "from-the-console"}, headers={"x-csrf-token": token, **browser_headers}
        )
        forged = client.post(
            "/endpoint",
            json={"name": "forged"},
            headers={"x-csrf-token": token, "origin": "http://evil.example", "sec-fetch-site": "cross-site"},
        )

        assert made.status_code == 201, made.text
        assert forged.status_code == 403, forged.text
