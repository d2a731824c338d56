"""What the console's replay forms offer: the versions a run or a batch can be replayed against.

- A conversation's "Replay against…": for an endpoint run, every deploy in the endpoint's
  history (newest first, active or not); for a processor run, every version of the processor,
  and a draft whose editor starts with the code of the version that ran (else the active
  code). A run whose endpoint or processor is gone offers nothing (`ReplayChoices.missing`).
- The batch forms ("test this version against the last N runs") of endpoint and processor
  pages offer the same lists; `recent_batches` is the newest reports of one subject.

Reads storage only; the forms send their choice to the JSON API (`routes/replay.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from control_plane.state import Services
from control_plane.storage import endpoints as endpoint_store
from control_plane.storage import processor_versions as versions
from control_plane.storage import processors as processor_store
from control_plane.storage.conversations import Conversation
from control_plane.storage.endpoints import Deploy, Endpoint
from control_plane.storage.processor_versions import ProcessorVersion
from control_plane.storage.processors import Processor

RECENT_BATCHES = 5
T = TypeVar("T")


@dataclass(frozen=True)
class Draft:
    language: str
    runtime: str
    code: str


@dataclass(frozen=True)
class ReplayChoices:
    kind: str
    """"endpoint" or "processor"."""
    endpoint: Endpoint | None = None
    deploys: list[Deploy] = field(default_factory=list)
    """Newest first."""
    processor: Processor | None = None
    versions: list[ProcessorVersion] = field(default_factory=list)
    """Newest first."""
    draft: Draft | None = None

    @property
    def missing(self) -> bool:
        return self.endpoint is None and self.processor is None


async def choices_for(found: Services, conversation: Conversation) -> ReplayChoices:
    """What `conversation` can be replayed against."""
    if conversation.endpoint_id:
        endpoint = await endpoint_store.get_endpoint(found.db, conversation.endpoint_id)
        if endpoint is None:
            return ReplayChoices("endpoint")
        return ReplayChoices("endpoint", endpoint=endpoint, deploys=newest_first(endpoint.deploy_history))
    processor_id = conversation.request_processor_id
    processor = await processor_store.get_processor(found.db, processor_id) if processor_id else None
    if processor is None:
        return ReplayChoices("processor")
    ran = await versions.get_version(found.db, conversation.processor_version_id or "")
    if ran is not None and ran[0].processor_id == processor.id:
        draft = Draft(ran[0].language, ran[0].runtime, ran[1])
    else:
        draft = Draft(processor.language, processor.runtime, processor.code)
    return ReplayChoices(
        "processor", processor=processor, versions=newest_first(processor.version_history), draft=draft
    )


def newest_first(history: tuple[T, ...]) -> list[T]:
    return list(reversed(history))


async def recent_batches(
    found: Services, *, endpoint_id: str | None = None, processor_id: str | None = None
) -> list[dict[str, Any]]:
    return await found.replay_batches.list(
        limit=RECENT_BATCHES, endpoint_id=endpoint_id, processor_id=processor_id
    )
