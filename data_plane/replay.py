"""`POST /replay` on the data plane: run a recorded request again against a given target.

Only a control plane calls this route (`control_plane/replay_client.py`); the job's shape is
in `replay_job`, how it runs in `replay_runner`. The answer is `{"conversation_id", "status"}`
once the replay's conversation is in Redis (and `FH-Conversation-Id`, as every run's answer), so
the control plane can read it at once.

Who may call it (the data plane listens on every address, and a replay runs code its caller
chooses): with FFAAS_ADMIN_TOKEN set on the data plane, only a caller presenting
`Authorization: Bearer <replay_token(FFAAS_ADMIN_TOKEN)>` (`shared.replay_auth`; compared in
constant time), else 401; with no token configured, only callers on a loopback address, else
403. The job body is capped at FFAAS_MAX_REPLAY_BYTES (413 above).
"""

from __future__ import annotations

import hmac
import json
from ipaddress import ip_address

from starlette.requests import Request
from starlette.responses import JSONResponse

from data_plane.replay_job import parse_job
from data_plane.replay_runner import ReplayRunner
from data_plane.responses import CONVERSATION_HEADER
from shared.errors import BadRequest, Forbidden, Unauthorized, Unavailable
from shared.openapi import Schema, error, json_answer, json_body, operation, ref
from shared.replay_auth import replay_token
from shared.request_body import read_capped_body

_TEXT: Schema = {"type": "string", "minLength": 1}
_HEADERS: Schema = {
    "type": ["object", "null"],
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}
schemas: dict[str, Schema] = {
    "ReplayJob": {
        "type": "object",
        "description": "What a control plane sends (data_plane/replay_job.py): the recorded request, exactly "
        "one target, and in recorded mode the original run's outbound exchanges. The processor's code_hash "
        "must be the content hash of its code.",
        "required": ["replay_of", "outbound", "request"],
        "properties": {
            "replay_of": {"type": "string", "minLength": 1},
            "outbound": {"enum": ["recorded", "live"]},
            "request": {
                "type": "object",
                "required": ["method", "path", "version"],
                "properties": {
                    "method": _TEXT,
                    "path": _TEXT,
                    "query": {"type": "string"},
                    "headers": _HEADERS,
                    "body": {"type": "string"},
                    "version": _TEXT,
                },
            },
            "endpoint": {
                "type": ["object", "null"],
                "required": ["endpoint_id", "deploy_id", "module_hash"],
                "properties": {
                    "endpoint_id": _TEXT,
                    "deploy_id": _TEXT,
                    "module_hash": _TEXT,
                    "env": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
                },
            },
            "processor": {
                "type": ["object", "null"],
                "required": ["processor_id", "name", "language", "runtime", "code_hash", "code", "entry"],
                "properties": {
                    **{
                        name: _TEXT
                        for name in ("processor_id", "name", "language", "runtime", "code_hash", "code")
                    },
                    "version_id": {"type": ["string", "null"]},
                    "entry": {"enum": ["run", "run_with_prelude"]},
                },
            },
            "recorded_outbound": {"type": ["array", "null"], "items": {"type": "object"}},
        },
        "oneOf": [
            {
                "required": ["endpoint"],
                "properties": {"endpoint": {"type": "object"}, "processor": {"type": "null"}},
            },
            {
                "required": ["processor"],
                "properties": {"processor": {"type": "object"}, "endpoint": {"type": "null"}},
            },
        ],
    },
    "ReplayRun": {
        "type": "object",
        "required": ["conversation_id", "status"],
        "properties": {
            "conversation_id": {"type": "string", "format": "uuid"},
            "status": {"type": "integer", "description": "the status the replayed run answered"},
        },
        "additionalProperties": False,
    },
}


class ReplayRoute:
    def __init__(self, *, admin_token: str, max_job_bytes: int) -> None:
        self._expected = f"Bearer {replay_token(admin_token)}".encode() if admin_token else b""
        self._max_job_bytes = max_job_bytes
        self.runner: ReplayRunner | None = None
        """Set by the lifespan once the dispatchers exist."""

    @operation(
        "Run a recorded request again against a given target (for control planes only)",
        tag="replay",
        operation_id="replay",
        description="Called by a control plane (POST /conversation/{id}/replay and batch replays there). "
        "With FFAAS_ADMIN_TOKEN set, it needs `Authorization: Bearer <replay token>`, derived from that "
        "token by the control plane; without one, only loopback callers may use it.",
        body=json_body(ref("ReplayJob")),
        responses={
            200: json_answer("The replay ran and its conversation is in Redis", ref("ReplayRun")),
            400: error("The job is not valid JSON, or a field of it is missing or wrong"),
            401: error("No replay token, or a wrong one (FFAAS_ADMIN_TOKEN must match the control plane's)"),
            403: error("No FFAAS_ADMIN_TOKEN is set on this data plane and the caller is not on loopback"),
            409: error("The job cannot run as sent (e.g. its target's code or module is not available)"),
            413: error("The job is larger than FFAAS_MAX_REPLAY_BYTES"),
            503: error(
                "The data plane is starting or stopping, or is overloaded, or the target's module could "
                "not be fetched from Redis within FFAAS_REDIS_TIMEOUT_MS (Retry-After)"
            ),
        },
    )
    async def handle(self, request: Request) -> JSONResponse:
        self._check_caller(request)
        runner = self.runner
        if runner is None:
            raise Unavailable("the data plane is starting or stopping; replay again in a moment")
        limit = self._max_job_bytes
        body = await read_capped_body(
            request, limit, f"replay job is larger than {limit} bytes (FFAAS_MAX_REPLAY_BYTES)"
        )
        try:
            job = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"the replay job is not valid JSON: {exc}") from exc
        result = await runner.run(parse_job(job))
        return JSONResponse(
            {"conversation_id": result.conversation_id, "status": result.status},
            headers={CONVERSATION_HEADER: result.conversation_id},
        )

    def _check_caller(self, request: Request) -> None:
        if self._expected:
            presented = request.headers.get("authorization")
            if presented is None:
                raise Unauthorized(
                    "replays need `Authorization: Bearer <replay token>`, which the control plane derives "
                    "from FFAAS_ADMIN_TOKEN",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if not hmac.compare_digest(presented.encode(), self._expected):
                raise Unauthorized(
                    "wrong replay token: the control plane and the data plane must share FFAAS_ADMIN_TOKEN",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return
        client = request.client.host if request.client else ""
        if not _is_loopback(client):
            raise Forbidden(
                "replays are accepted only from loopback addresses while FFAAS_ADMIN_TOKEN is not set "
                "on this data plane"
            )


def _is_loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
