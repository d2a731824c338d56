"""With no admin token, only requests naming a loopback host are answered (DNS rebinding).

A page on `rebind.example` whose name later resolves to 127.0.0.1 makes the browser send
`Host: rebind.example:3000` with a same-origin `Origin`: the cross-site guard lets that
through, so this is what stops the page reading conversations or writing.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from control_plane.app import create_app
from control_plane.settings import Settings
from tests.control_plane.local_client import LocalTestClient


@pytest.mark.parametrize(
    "host", ["rebind.example:3000", "rebind.example", "10.0.0.5:3000", "127.0.0.1.example"]
)
def test_a_request_naming_another_host_is_refused_for_reads_and_writes(
    client: LocalTestClient, host: str
) -> None:
    same_origin = {"host": host, "origin": f"http://{host}", "sec-fetch-site": "same-origin"}
    read = client.get("/conversation", headers=same_origin)
    write = client.post("/endpoint", json={"name": "rebound"}, headers=same_origin)
    page = client.get("/ui/endpoints", headers={"host": host})

    for response in (read, write, page):
        assert response.status_code == 403, response.text
        message = response.json()["message"]
        assert host in message and "FFAAS_ADMIN_TOKEN" in message and "DNS rebinding" in message
    assert [e["name"] for e in client.get("/endpoint").json()] == []


@pytest.mark.parametrize(
    "host", ["127.0.0.1:3000", "localhost:3000", "LOCALHOST", "app.localhost:3000", "127.1.2.3", "[::1]:3000"]
)
def test_loopback_names_are_answered(client: LocalTestClient, host: str) -> None:
    response = client.get("/endpoint", headers={"host": host})

    assert response.status_code == 200, response.text


def test_with_a_token_any_host_is_answered_with_the_token(settings: Settings) -> None:
    with LocalTestClient(create_app(replace(settings, admin_token="the-token"))) as client:
        response = client.get(
            "/endpoint", headers={"host": "ffaas.example.com", "authorization": "Bearer the-token"}
        )
        unauthenticated = client.get("/endpoint", headers={"host": "ffaas.example.com"})

    assert response.status_code == 200, response.text
    assert unauthenticated.status_code == 401, unauthenticated.text
