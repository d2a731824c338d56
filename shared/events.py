"""What the control plane publishes for data planes: routes and route events.

An `EndpointRoute` in the `Keys.routes` hash is the authoritative state of one
endpoint, a `ProcessorRoute` in `Keys.processors` that of one processor; a
`RouteEvent` only tells data planes which one to re-read, so events that arrive
late, twice or out of order can never install stale state.  All travel as
versioned msgpack maps (`shared.wire`): unknown fields are ignored, and a record that
cannot be read raises `UnreadableRecord`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared import wire


@dataclass(frozen=True)
class EndpointRoute:
    endpoint_id: str
    deploy_id: str
    module_hash: str
    env: dict[str, str] = field(default_factory=dict)

    def pack(self) -> bytes:
        return wire.pack(self)

    @classmethod
    def unpack(cls, data: bytes) -> EndpointRoute:
        return wire.unpack(data, cls)


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
        return wire.pack(self)

    @classmethod
    def unpack(cls, data: bytes) -> ProcessorRoute:
        return wire.unpack(data, cls)


@dataclass(frozen=True)
class RouteEvent:
    """Endpoint `endpoint_id` (deployed, rolled back, env set or deleted) or processor
    `processor_id` (saved or deleted) changed; exactly one of the two is set.
    `endpoint_id == "*"` means: re-read every endpoint and every processor."""

    event_id: str
    endpoint_id: str = ""
    processor_id: str = ""

    def pack(self) -> bytes:
        return wire.pack(self)

    @classmethod
    def unpack(cls, data: bytes) -> RouteEvent:
        return wire.unpack(data, cls)
