"""Admin token: required on every route but GET /status and the conversation reads."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from control_plane import auth
from control_plane.app import create_app
from control_plane.settings import Settings
from tests.control_plane import wasm_modules
from tests.control_plane.local_client import LocalTestClient

TOKEN = "s3cret-admin-token"


@pytest.fixture
def guarded(settings: Settings) -> Iterator[LocalTestClient]:
    with LocalTestClient(create_app(replace(settings, admin_token=TOKEN))) as client:
        yield client


AUTHORIZED = {"authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/endpoint"),
        ("GET", "/endpoint"),
        ("GET", "/endpoint/some-id"),
        ("DELETE", "/endpoint/some-id"),
        ("POST", "/endpoint/some-id/deploy"),
        ("POST", "/endpoint/some-id/rollback"),
        ("GET", "/endpoint/some-id/env"),
        ("PUT", "/endpoint/some-id/env"),
        ("GET", "/admin/processor"),
        ("GET", "/no/such/route"),
        ("POST", "/status"),
        ("DELETE", "/conversation/some-id"),
    ],
)
def test_every_admin_route_without_the_token_is_401(guarded: LocalTestClient, method: str, path: str) -> None:
    response = guarded.request(method, path)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "code": 401,
        "message": "missing Authorization header: send `Authorization: Bearer <FFAAS_ADMIN_TOKEN>`",
    }


@pytest.mark.parametrize(
    "authorization", [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", TOKEN, f"Basic {TOKEN}", "Bearer ", ""]
)
def test_a_wrong_token_is_401(guarded: LocalTestClient, authorization: str) -> None:
    response = guarded.get("/endpoint", headers={"authorization": authorization})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "code": 401,
        "message": "wrong admin token in the Authorization header (FFAAS_ADMIN_TOKEN)",
    }


def test_the_right_token_opens_every_route(guarded: LocalTestClient) -> None:
    created = guarded.post("/endpoint", json={"name": "guarded"}, headers=AUTHORIZED)
    assert created.status_code == 201
    endpoint_id = created.json()["id"]

    deployed = guarded.post(
        f"/endpoint/{endpoint_id}/deploy", content=wasm_modules.command_module(), headers=AUTHORIZED
    )

    assert deployed.status_code == 201
    assert guarded.get(f"/endpoint/{endpoint_id}", headers=AUTHORIZED).status_code == 200
    assert guarded.get("/endpoint", headers=AUTHORIZED).json()[0]["id"] == endpoint_id
    assert guarded.delete(f"/endpoint/{endpoint_id}", headers=AUTHORIZED).status_code == 204


@pytest.mark.parametrize(
    "path", ["/status", "/conversation/abc", "/conversation/abc/audit_item", "/conversation/abc/"]
)
def test_status_and_conversation_reads_need_no_token(guarded: LocalTestClient, path: str) -> None:
    response = guarded.get(path)

    # Conversation routes arrive with later work; until then they are a 404, never a 401.
    assert response.status_code != 401


def test_status_is_ok_without_a_token(guarded: LocalTestClient) -> None:
    assert guarded.get("/status").json()["status"] == "ok"


def test_without_a_configured_token_no_route_needs_one(client: LocalTestClient) -> None:
    assert client.get("/endpoint").status_code == 200
    assert client.post("/endpoint", json={"name": "open"}).status_code == 201


def test_the_bearer_scheme_is_case_insensitive(guarded: LocalTestClient) -> None:
    for scheme in ("bearer", "BEARER", "Bearer"):
        response = guarded.get("/endpoint", headers={"authorization": f"{scheme} {TOKEN}"})
        assert response.status_code == 200, (scheme, response.text)


def test_a_non_ascii_token_is_compared_as_its_utf8_bytes(settings: Settings) -> None:
    token = "clé-secrète-€"
    with LocalTestClient(create_app(replace(settings, admin_token=token))) as client:
        right = client.get("/endpoint", headers={"authorization": b"Bearer " + token.encode()})
        # The same characters in latin-1 are other bytes on the wire: not the token.
        wrong = client.get(
            "/endpoint", headers={"authorization": b"Bearer " + "clé-secrète-".encode("latin-1")}
        )

    assert right.status_code == 200, right.text
    assert wrong.status_code == 401


def test_tokens_are_compared_with_compare_digest_on_bytes(
    guarded: LocalTestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[object, object]] = []
    real_compare = auth.hmac.compare_digest

    def spy(presented: bytes, expected: bytes) -> bool:
        compared.append((presented, expected))
        return real_compare(presented, expected)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)

    assert guarded.get("/endpoint", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert guarded.get("/endpoint", headers={"authorization": "Bearer nope"}).status_code == 401
    assert guarded.get("/endpoint", headers={"authorization": f"Basic {TOKEN}"}).status_code == 401
    assert compared == [(TOKEN.encode(), TOKEN.encode()), (b"nope", TOKEN.encode()), (b"\0", TOKEN.encode())]
