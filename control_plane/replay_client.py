"""The control plane's side of `POST /replay` on a data plane (the control plane runs no user code).

One `httpx.AsyncClient` for the process, opened in the lifespan, sending jobs to
FFAAS_DATA_PLANE_URL (the public data-plane URL unless set) with the replay token derived from
FFAAS_ADMIN_TOKEN (`shared.replay_auth`). The data plane answers once the replay's
conversation is in Redis.

Errors, each naming the setting to look at: no answer -> 503 (FFAAS_DATA_PLANE_URL); no answer
within FFAAS_REPLAY_TIMEOUT_MS -> 503; a data plane 409, 413 or 503 is passed on as it is (a
module missing from Redis, a job over FFAAS_MAX_REPLAY_BYTES, a data plane starting); any
other refusal (401/403: the planes do not share FFAAS_ADMIN_TOKEN) -> 502 quoting it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from shared.errors import BadGateway, Conflict, PayloadTooLarge, ServiceError, Unavailable
from shared.replay_auth import replay_authorization

PASSED_ON: dict[int, type[ServiceError]] = {409: Conflict, 413: PayloadTooLarge, 503: Unavailable}


class DataPlaneClient:
    def __init__(self, base_url: str, *, admin_token: str, timeout_ms: int) -> None:
        self.url = f"{base_url.rstrip('/')}/replay"
        self._timeout_ms = timeout_ms
        self._http = httpx.AsyncClient(
            timeout=timeout_ms / 1000,
            headers=replay_authorization(admin_token),
            limits=httpx.Limits(max_keepalive_connections=8),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def replay(self, job: dict[str, Any]) -> str:
        """Send `job`; the id of the replay's conversation, already in the conversation stream."""
        try:
            async with asyncio.timeout(self._timeout_ms / 1000):  # the whole exchange, not each read
                response = await self._http.post(self.url, json=job)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise Unavailable(
                f"the data plane at {self.url} did not answer the replay within {self._timeout_ms} ms "
                "(FFAAS_REPLAY_TIMEOUT_MS)"
            ) from exc
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"no data plane answered at {self.url} (FFAAS_DATA_PLANE_URL): {exc or type(exc).__name__}"
            ) from exc
        if response.status_code == 200:
            conversation_id = _json(response).get("conversation_id")
            if isinstance(conversation_id, str):
                return conversation_id
        message = str(_json(response).get("message") or response.text[:200])
        error = PASSED_ON.get(response.status_code)
        if error is not None:
            headers = (
                {"Retry-After": response.headers["retry-after"]}
                if "retry-after" in response.headers
                else None
            )
            raise error(f"the data plane at {self.url}: {message}", headers=headers)
        hint = (
            " (FFAAS_ADMIN_TOKEN must be the same on both planes)"
            if response.status_code in (401, 403)
            else ""
        )
        raise BadGateway(
            f"the data plane at {self.url} refused the replay with {response.status_code}: {message}{hint}"
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
