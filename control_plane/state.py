"""What the lifespan opens and the routes use, as one typed object on `app.state.services`."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from starlette.requests import Request

from control_plane.conversation_feed import ConversationFeed
from control_plane.ingest import Ingester
from control_plane.publisher import Publisher
from control_plane.replay import Replayer
from control_plane.replay_batches import ReplayBatches
from control_plane.retention import Retention
from control_plane.settings import Settings
from control_plane.storage.database import Database
from shared.keys import Keys


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    redis: aioredis.Redis
    keys: Keys
    publisher: Publisher
    ingester: Ingester
    retention: Retention
    replayer: Replayer
    replay_batches: ReplayBatches
    feed: ConversationFeed


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
