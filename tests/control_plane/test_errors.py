"""One JSON error shape for every failure, as datasette enforces it: exactly {code, message}."""

from __future__ import annotations

import uuid

from tests.control_plane import wasm_modules
from tests.control_plane.conftest import create_endpoint
from tests.control_plane.local_client import LocalTestClient


def test_every_error_body_is_exactly_code_and_message(client: LocalTestClient) -> None:
    endpoint = create_endpoint(client)
    endpoint_id = endpoint["id"]
    missing = str(uuid.uuid4())
    cases = [
        (client.get("/no-such-route"), 404),
        (client.get(f"/endpoint/{endpoint_id}/nope"), 404),
        (client.put("/endpoint"), 405),
        (client.patch(f"/endpoint/{endpoint_id}"), 405),
        (client.post("/endpoint", content=b"nope", headers={"content-type": "application/json"}), 400),
        (client.post("/endpoint", content=b'{"name": "x"}', headers={"content-type": "text/plain"}), 415),
        (client.post("/endpoint", json={"name": "x"}, headers={"origin": "http://elsewhere.test"}), 403),
        (client.post("/endpoint", json={"name": ""}), 400),
        (client.get(f"/endpoint/{missing}"), 404),
        (client.delete(f"/endpoint/{missing}"), 404),
        (client.post(f"/endpoint/{endpoint_id}/deploy", content=b""), 400),
        (client.post(f"/endpoint/{endpoint_id}/deploy", content=wasm_modules.NOT_WASM), 400),
        (client.post(f"/endpoint/{endpoint_id}/deploy", content=wasm_modules.NO_START), 400),
        (client.post(f"/endpoint/{endpoint_id}/rollback"), 400),
        (client.post(f"/endpoint/{endpoint_id}/rollback", json={"deploy_id": missing}), 404),
        (client.put(f"/endpoint/{endpoint_id}/env", json={"HTTP_X": "1"}), 400),
        (client.get(f"/endpoint/{missing}/env"), 404),
    ]
    for response, status in cases:
        request = f"{response.request.method} {response.request.url.path}"
        assert response.status_code == status, request
        assert response.headers["content-type"] == "application/json", request
        body = response.json()
        assert set(body) == {"code", "message"}, request
        assert body["code"] == status, request
        assert isinstance(body["message"], str) and body["message"], request


def test_an_unknown_route_is_a_404_json_error(client: LocalTestClient) -> None:
    response = client.get("/definitely/not/here")

    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "no route for GET /definitely/not/here"}


def test_a_wrong_method_is_a_405_json_error(client: LocalTestClient) -> None:
    response = client.put("/status")

    assert response.status_code == 405
    assert response.json() == {"code": 405, "message": "method PUT is not allowed on /status"}
