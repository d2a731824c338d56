"""What the control plane publishes for data planes: routes and route events.

An `EndpointRoute` in the `Keys.routes` hash is the authoritative state of one
endpoint, a `ProcessorRoute` in `Keys.processors` that of one processor; a
`RouteEvent` only tells data planes which one to re-read, so events that arrive
late, twice or out of order can never install stale state.  All travel as
msgpack maps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import msgpack


@dataclass(frozen=True)
class EndpointRoute:
    endpoint_id: str
    deploy_id: str
    module_hash: str
    env: dict[str, str] = field(default_factory=dict)

    def pack(self) -> bytes:
        return msgpack.packb(asdict(self))

    @classmethod
    def unpack(cls, data: bytes) -> EndpointRoute:
        fields = msgpack.unpackb(data)
        return cls(
            endpoint_id=fields["endpoint_id"],
            deploy_id=fields["deploy_id"],
            module_hash=fields["module_hash"],
            env=dict(fields.get("env") or {}),
        )


@dataclass(frozen=True)
class ProcessorRoute:
    """A stored processor as data planes run it: `code_hash` names its runnable JavaScript
    (`Keys.processor_code`), already transpiled when the processor is TypeScript."""

    processor_id: str
    name: str
    language: str
    """"js" or "ts": the language the user wrote."""
    runtime: str
    """"v8" or "wasm"."""
    code_hash: str
    version_id: str = ""
    """The processor's active version (conversations record it); optional on the wire: a route
    written before versions existed has none, and readers ignore fields they do not know."""

    def pack(self) -> bytes:
        return msgpack.packb(asdict(self))

    @classmethod
    def unpack(cls, data: bytes) -> ProcessorRoute:
        fields = msgpack.unpackb(data)
        known = {name: value for name, value in fields.items() if name in _PROCESSOR_ROUTE_FIELDS}
        return cls(**known)


_PROCESSOR_ROUTE_FIELDS = frozenset(ProcessorRoute.__dataclass_fields__)


@dataclass(frozen=True)
class RouteEvent:
    """Endpoint `endpoint_id` (deployed, rolled back, env set or deleted) or processor
    `processor_id` (saved or deleted) changed; exactly one of the two is set.
    `endpoint_id == "*"` means: re-read every endpoint and every processor."""

    event_id: str
    endpoint_id: str = ""
    processor_id: str = ""

    def pack(self) -> bytes:
        return msgpack.packb(asdict(self))

    @classmethod
    def unpack(cls, data: bytes) -> RouteEvent:
        fields = msgpack.unpackb(data)
        return cls(
            event_id=fields["event_id"],
            endpoint_id=fields.get("endpoint_id", ""),
            processor_id=fields.get("processor_id", ""),
        )
