"""What a replay runs: a deploy of an endpoint, or processor code (a saved version or a draft).

Each target knows its part of the data plane's replay job (`job`, see
`data_plane/replay_job.py`) and how reports name it (`described`). Resolving a request's
`deploy_id` / `processor_version_id` / draft code into a target is `routes/replay_targets.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeployTarget:
    endpoint_id: str
    deploy_id: str
    module_hash: str
    env: dict[str, str]

    def job(self, entry: str | None) -> dict[str, Any]:
        endpoint = {
            "endpoint_id": self.endpoint_id,
            "deploy_id": self.deploy_id,
            "module_hash": self.module_hash,
            "env": self.env,
        }
        return {"endpoint": endpoint}

    def described(self) -> dict[str, Any]:
        return {"deploy_id": self.deploy_id}


@dataclass(frozen=True)
class ProcessorCodeTarget:
    processor_id: str
    version_id: str | None
    """None for a draft (code sent with the replay, not saved)."""
    name: str
    language: str
    runtime: str
    code_hash: str
    js: str
    """The runnable JavaScript (TypeScript already transpiled)."""

    def job(self, entry: str | None) -> dict[str, Any]:
        processor = {
            "processor_id": self.processor_id,
            "version_id": self.version_id,
            "name": self.name,
            "language": self.language,
            "runtime": self.runtime,
            "code_hash": self.code_hash,
            "code": self.js,
            "entry": entry,
        }
        return {"processor": processor}

    def described(self) -> dict[str, Any]:
        if self.version_id is not None:
            return {"processor_version_id": self.version_id}
        return {"draft": {"language": self.language, "runtime": self.runtime, "code_hash": self.code_hash}}


ReplayTarget = DeployTarget | ProcessorCodeTarget
