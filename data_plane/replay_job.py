"""A replay job as the control plane sends it to `POST /replay`: parsed and checked, no I/O.

The job (JSON) names the conversation replayed, the outbound mode, the recorded incoming
request (as its audit item holds it), exactly one target, and in `recorded` mode the
original run's outbound exchanges:

    {"replay_of": "<uuid>", "outbound": "recorded" | "live",
     "request": {"method", "path", "query", "headers": {name: [values]}, "body", "version"},
     "endpoint": {"endpoint_id", "deploy_id", "module_hash", "env": {name: value}}
       or "processor": {"processor_id", "version_id" (null for a draft), "name", "language",
                        "runtime", "code_hash", "code" (runnable JavaScript), "entry": "run" |
                        "run_with_prelude"},
     "recorded_outbound": [{"method", "url", "response": {"code", "headers", "body"}}
                           or {"method", "url", "error": "<why the original got no answer>"}]}

Invariant: `parse_job` either returns a job whose every field has the type the runner
needs, or raises `BadRequest` naming the first field that is wrong; bodies are decoded
from their captured form (`shared.conversations.body_from_captured`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from data_plane.host.outbound_http import OutboundResponse
from data_plane.incoming_request import IncomingRequest
from data_plane.replay_outbound import RecordedExchange
from shared.content_hash import content_hash
from shared.conversations import body_from_captured
from shared.errors import BadRequest

OUTBOUND_MODES = ("recorded", "live")
ENTRY_POINTS = {"run": False, "run_with_prelude": True}
RAW_PATH_SAFE = "/!$&'()*+,;=:@-._~"


@dataclass(frozen=True)
class EndpointTarget:
    endpoint_id: str
    deploy_id: str
    module_hash: str
    env: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ProcessorTarget:
    processor_id: str
    version_id: str | None
    name: str
    language: str
    runtime: str
    code_hash: str
    code: str
    with_prelude: bool


@dataclass(frozen=True)
class ReplayJob:
    replay_of: str
    outbound: str
    request: IncomingRequest
    target: EndpointTarget | ProcessorTarget
    recorded_outbound: tuple[RecordedExchange, ...]


def parse_job(job: object) -> ReplayJob:
    if not isinstance(job, dict):
        raise BadRequest("the replay job must be a JSON object")
    outbound = _text(job, "outbound")
    if outbound not in OUTBOUND_MODES:
        raise BadRequest(f"outbound must be one of {', '.join(OUTBOUND_MODES)}, got {outbound!r}")
    targets = [name for name in ("endpoint", "processor") if job.get(name) is not None]
    if len(targets) != 1:
        raise BadRequest("the replay job needs exactly one target: endpoint or processor")
    target = _endpoint(job["endpoint"]) if targets == ["endpoint"] else _processor(job["processor"])
    exchanges = job.get("recorded_outbound") or []
    if not isinstance(exchanges, list):
        raise BadRequest("recorded_outbound must be a list")
    return ReplayJob(
        replay_of=_text(job, "replay_of"),
        outbound=outbound,
        request=_request(_object(job, "request")),
        target=target,
        recorded_outbound=tuple(_exchange(exchange, index) for index, exchange in enumerate(exchanges)),
    )


def _request(fields: dict[str, Any]) -> IncomingRequest:
    """The recorded request as a run sees it. The path was recorded decoded, so the raw path is
    encoded again; the caller's address was not recorded, so REMOTE_ADDR is empty."""
    path = _text(fields, "path", "request.")
    headers = _header_pairs(fields.get("headers"), "request.headers")
    host = next((value for name, value in headers if name == "host"), "")
    server_name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
    return IncomingRequest(
        method=_text(fields, "method", "request."),
        path=path,
        raw_path=quote(path, safe=RAW_PATH_SAFE),
        query=_text(fields, "query", "request.", empty=True),
        headers=headers,
        body=body_from_captured(_text(fields, "body", "request.", empty=True)),
        version=_text(fields, "version", "request."),
        scheme="http",
        server_name=server_name or "localhost",
        server_port=int(port) if port.isdigit() else 80,
        client_host="",
    )


def _endpoint(value: object) -> EndpointTarget:
    fields = _as_object(value, "endpoint")
    env = fields.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise BadRequest("endpoint.env must be an object of strings")
    return EndpointTarget(
        endpoint_id=_text(fields, "endpoint_id", "endpoint."),
        deploy_id=_text(fields, "deploy_id", "endpoint."),
        module_hash=_text(fields, "module_hash", "endpoint."),
        env=tuple((str(name), value) for name, value in env.items()),
    )


def _processor(value: object) -> ProcessorTarget:
    fields = _as_object(value, "processor")
    code = _text(fields, "code", "processor.")
    code_hash = _text(fields, "code_hash", "processor.")
    if content_hash(code.encode()) != code_hash:
        raise BadRequest("processor.code_hash is not the content hash of processor.code")
    entry = _text(fields, "entry", "processor.")
    if entry not in ENTRY_POINTS:
        raise BadRequest(f"processor.entry must be run or run_with_prelude, got {entry!r}")
    version_id = fields.get("version_id")
    if version_id is not None and not isinstance(version_id, str):
        raise BadRequest("processor.version_id must be a string or null")
    return ProcessorTarget(
        processor_id=_text(fields, "processor_id", "processor."),
        version_id=version_id,
        name=_text(fields, "name", "processor."),
        language=_text(fields, "language", "processor."),
        runtime=_text(fields, "runtime", "processor."),
        code_hash=code_hash,
        code=code,
        with_prelude=ENTRY_POINTS[entry],
    )


def _exchange(value: object, index: int) -> RecordedExchange:
    where = f"recorded_outbound[{index}]"
    fields = _as_object(value, where)
    method = _text(fields, "method", f"{where}.").upper()
    url = _text(fields, "url", f"{where}.")
    if fields.get("error") is not None:
        return RecordedExchange(method, url, None, str(fields["error"]))
    response = _as_object(fields.get("response"), f"{where}.response")
    code = response.get("code")
    if not isinstance(code, int) or isinstance(code, bool) or not 100 <= code <= 999:
        raise BadRequest(f"{where}.response.code must be an HTTP status")
    answer = OutboundResponse(
        status=code,
        headers=_header_pairs(response.get("headers"), f"{where}.response.headers"),
        body=body_from_captured(_text(response, "body", f"{where}.response.", empty=True)),
        url=url,
    )
    return RecordedExchange(method, url, answer, None)


def _header_pairs(value: object, where: str) -> tuple[tuple[str, str], ...]:
    """`{name: [values]}` (as audit items hold headers) as (lower-case name, value) pairs."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be an object of header names to lists of values")
    pairs: list[tuple[str, str]] = []
    for name, values in value.items():
        if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
            raise BadRequest(f"{where}.{name} must be a list of strings")
        pairs.extend((str(name).lower(), item) for item in values)
    return tuple(pairs)


def _object(fields: dict[str, Any], name: str) -> dict[str, Any]:
    return _as_object(fields.get(name), name)


def _as_object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be an object")
    return value


def _text(fields: dict[str, Any], name: str, where: str = "", *, empty: bool = False) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or (not value and not empty):
        raise BadRequest(f"{where}{name} must be a{'' if empty else ' non-empty'} string")
    return value
