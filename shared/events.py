"""What the control plane publishes for data planes: routes and route events.

An `EndpointRoute` in the `Keys.routes` hash is the authoritative state of one
endpoint; a `RouteEvent` only tells data planes which endpoint to re-read, so
events that arrive late, twice or out of order can never install stale state.
Both travel as msgpack maps.
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
class RouteEvent:
    """Endpoint `endpoint_id` changed (deployed, rolled back, env set or deleted)."""

    event_id: str
    endpoint_id: str

    def pack(self) -> bytes:
        return msgpack.packb(asdict(self))

    @classmethod
    def unpack(cls, data: bytes) -> RouteEvent:
        fields = msgpack.unpackb(data)
        return cls(event_id=fields["event_id"], endpoint_id=fields["endpoint_id"])
