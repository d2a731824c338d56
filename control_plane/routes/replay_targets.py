"""Reading a replay's target from a request body: `deploy_id`, `processor_version_id`, or a draft
`{code, language, runtime}`, exactly one, checked against what is replayed.

- A deploy must be one of the endpoint's own (any in its history, active or not); its module
  bytes are put back in Redis if missing, so a data plane can fetch them by hash.
- A version must be one of the processor's own.
- A draft is validated and transpiled exactly like a save (`routes.processors`: 400 with
  esbuild's `line:column` for code that does not compile, 413 over
  FFAAS_MAX_PROCESSOR_CODE_BYTES) and stored nowhere; `language` and `runtime` default to
  the processor's active ones (a deleted processor's runs need both given).
"""

from __future__ import annotations

from redis.exceptions import RedisError

from control_plane.replay_targets import DeployTarget, ProcessorCodeTarget, ReplayTarget
from control_plane.routes.processors import runnable_code, validate_fields
from control_plane.state import Services
from control_plane.storage import endpoints as endpoint_store
from control_plane.storage import processor_versions as versions
from control_plane.storage import processors as processor_store
from shared.errors import BadRequest, NotFound
from shared.redis import unavailable

TARGET_FIELDS = ("deploy_id", "processor_version_id", "code")


async def resolve_target(
    found: Services, body: dict[str, object], *, endpoint_id: str | None, processor_id: str | None
) -> ReplayTarget:
    """The target named in `body` for a run of `endpoint_id` or of `processor_id` (one is set)."""
    given = [field for field in TARGET_FIELDS if body.get(field) is not None]
    if len(given) != 1:
        kind = "a deploy_id" if endpoint_id is not None else "a processor_version_id, or code (a draft)"
        problem = "none was" if not given else f"{' and '.join(given)} were"
        raise BadRequest(f"give exactly one target: {kind}; {problem} given")
    field = given[0]
    drafted = [name for name in ("language", "runtime") if body.get(name) is not None]
    if drafted and field != "code":
        raise BadRequest(f"{' and '.join(drafted)} may only come with code (a draft), not with {field}")
    if endpoint_id is not None:
        if field != "deploy_id":
            raise BadRequest(f"endpoint {endpoint_id}'s runs replay against a deploy_id, not {field}")
        return await _deploy(found, _string(body, field), endpoint_id)
    assert processor_id is not None
    if field == "deploy_id":
        raise BadRequest(
            f"processor {processor_id}'s runs replay against a processor_version_id or code, not a deploy_id"
        )
    if field == "processor_version_id":
        return await _version(found, _string(body, field), processor_id)
    return await _draft(found, body, processor_id)


async def _deploy(found: Services, deploy_id: str, endpoint_id: str) -> DeployTarget:
    deploy = await endpoint_store.get_deploy(found.db, deploy_id)
    if deploy is None or deploy.endpoint_id != endpoint_id:
        raise NotFound(f"deploy {deploy_id} not found in endpoint {endpoint_id}")
    env = await endpoint_store.get_env(found.db, endpoint_id) or {}
    try:
        await found.publisher.ensure_module(deploy.module_hash)
    except (RedisError, OSError) as exc:
        raise unavailable(f"the module of deploy {deploy_id} could not be put in Redis", exc) from exc
    return DeployTarget(endpoint_id, deploy.id, deploy.module_hash, env)


async def _version(found: Services, version_id: str, processor_id: str) -> ProcessorCodeTarget:
    stored = await versions.get_version(found.db, version_id)
    if stored is None or stored[0].processor_id != processor_id:
        raise NotFound(f"version {version_id} not found in processor {processor_id}")
    version, _ = stored
    js = await processor_store.load_code(found.db, version.code_hash)
    if js is None:
        raise NotFound(f"the code of version {version_id} is not stored")
    return ProcessorCodeTarget(
        processor_id, version.id, version.name, version.language, version.runtime, version.code_hash, js
    )


async def _draft(found: Services, body: dict[str, object], processor_id: str) -> ProcessorCodeTarget:
    processor = await processor_store.get_processor(found.db, processor_id)
    fields = {  # a deleted processor's runs can still be replayed against a draft naming both
        "name": processor.name if processor else "draft",
        "language": _given_or(body, "language", processor.language if processor else None),
        "runtime": _given_or(body, "runtime", processor.runtime if processor else None),
        "code": body["code"],
    }
    checked = validate_fields(fields, found.settings, replacing=False)
    runnable = await runnable_code(checked, found.settings)
    return ProcessorCodeTarget(
        processor_id, None, checked.name, checked.language, checked.runtime, runnable.code_hash, runnable.js
    )


def _given_or(body: dict[str, object], field: str, default: str | None) -> object:
    """The field as given (even "" or 0, which validation then refuses), or `default` if absent or null."""
    value = body.get(field)
    return default if value is None else value


def _string(body: dict[str, object], field: str) -> str:
    value = body[field]
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{field} must be a non-empty string")
    return value
