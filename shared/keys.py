"""Every Redis key, channel and stream name FFAAS uses, under one prefix.

The prefix (``FFAAS_REDIS_PREFIX``, default ``ffaas``) lets several
installations, or tests, share one Redis without seeing each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "ffaas"

    def module(self, module_hash: str) -> str:
        """String: the wasm bytes of a module, by content hash. Written once, never changed."""
        return f"{self.prefix}:module:{module_hash}"

    @property
    def routes(self) -> str:
        """Hash: endpoint id -> packed `EndpointRoute`. The authoritative routing state."""
        return f"{self.prefix}:routes"

    @property
    def processors(self) -> str:
        """Hash: processor id -> packed `ProcessorRoute`. The authoritative processor state."""
        return f"{self.prefix}:processors"

    def processor_code(self, code_hash: str) -> str:
        """String: a processor's runnable JavaScript (UTF-8), by content hash. Written once."""
        return f"{self.prefix}:code:{code_hash}"

    @property
    def events(self) -> str:
        """Pub/sub channel: packed `RouteEvent`s, a hint to re-read `routes`."""
        return f"{self.prefix}:events"

    def acks(self, event_id: str) -> str:
        """List: one entry per data plane that has applied event `event_id`."""
        return f"{self.prefix}:ack:{event_id}"

    @property
    def conversations(self) -> str:
        """Stream: one entry per run, field `r` = packed `ConversationRecord`. The control plane trims
        what it has stored; the data planes bound it too (MAXLEN ~)."""
        return f"{self.prefix}:conversations"

    def held_conversation(self, conversation_id: str) -> str:
        """String: the plane id of the data plane whose outbox holds this conversation's record (it
        answered the run while Redis could not take the record).  Set when Redis answers again,
        before the record is written; deleted with that write; expires (a plane that never comes
        back must not hold the id forever)."""
        return f"{self.prefix}:held:{conversation_id}"

    @property
    def dead_letters(self) -> str:
        """Stream: entries of `conversations` that could not be read, parked instead of dropped.
        Fields: `source` (the stream), `source_id` (the entry's id there), `reason`, `parked_at`,
        `entry` (the entry's fields as a msgpack map). Bounded (MAXLEN ~)."""
        return f"{self.prefix}:dead-letters"

    @property
    def ingest_group(self) -> str:
        """The consumer group through which control planes ingest `conversations`."""
        return "ffaas-ingest"
