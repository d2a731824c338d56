"""Which prepared function serves each endpoint and each processor on this data plane.

Invariant: every entry holds either a compiled module ready to instantiate or,
for a module this data plane can never run (say its initial memory exceeds the
memory limit), the reason why.  An endpoint appears here only once its module
is prepared, and is swapped in one dict assignment, so a request sees either
the old deploy or the new one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import wasmtime


@dataclass(frozen=True)
class PreparedEndpoint:
    endpoint_id: str
    deploy_id: str
    module_hash: str
    module: wasmtime.Module | None
    env: tuple[tuple[str, str], ...]
    unusable_reason: str = ""


@dataclass(frozen=True)
class PreparedProcessor:
    processor_id: str
    name: str
    language: str
    runtime: str
    code_hash: str
    source: str
    """The runnable JavaScript (TypeScript was transpiled by the control plane)."""
    version_id: str = ""
    """The processor version this is (empty for a route published before versions, or a draft)."""


class Registry:
    def __init__(self) -> None:
        self._endpoints: dict[str, PreparedEndpoint] = {}
        self._processors: dict[str, PreparedProcessor] = {}
        self.runtimes_needed: Callable[[set[str]], None] = lambda runtimes: None
        """Called with the runtimes of the processors installed, each time some are (the app
        starts their engines, so that a processor's first run does not wait for them)."""

    def processor(self, processor_id: str) -> PreparedProcessor | None:
        return self._processors.get(processor_id)

    def install_processor(self, prepared: PreparedProcessor) -> None:
        self._processors[prepared.processor_id] = prepared
        self.runtimes_needed({prepared.runtime})

    def remove_processor(self, processor_id: str) -> None:
        self._processors.pop(processor_id, None)

    def replace_processors(self, processors: dict[str, PreparedProcessor]) -> None:
        self._processors = dict(processors)
        self.runtimes_needed(self.processor_runtimes())

    def code_hashes(self) -> set[str]:
        return {processor.code_hash for processor in self._processors.values()}

    def processor_runtimes(self) -> set[str]:
        return {processor.runtime for processor in self._processors.values()}

    @property
    def processor_count(self) -> int:
        return len(self._processors)

    def endpoint(self, endpoint_id: str) -> PreparedEndpoint | None:
        return self._endpoints.get(endpoint_id)

    def install(self, prepared: PreparedEndpoint) -> None:
        self._endpoints[prepared.endpoint_id] = prepared

    def remove(self, endpoint_id: str) -> None:
        self._endpoints.pop(endpoint_id, None)

    def replace_all(self, endpoints: dict[str, PreparedEndpoint]) -> None:
        self._endpoints = dict(endpoints)

    def module_hashes(self) -> set[str]:
        return {prepared.module_hash for prepared in self._endpoints.values()}

    def __len__(self) -> int:
        return len(self._endpoints)
