"""Killing the control plane at a known point of its ingest: holding entries read and not stored.

The test takes SQLite's write lock (the control plane can still read the stream, but can
store nothing) and waits until some entry pending in the ingest group (read by a consumer,
not acknowledged) carries a conversation that is not in the SQLite file. That entry cannot
be stored while the lock is held, so it cannot be acknowledged either (acks follow
commits): a SIGKILL then leaves it pending at the dead consumer, whatever the timing. No
sleep decides where the kill lands.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import redis

from shared.conversations import STREAM_FIELD, ConversationRecord
from shared.keys import Keys
from tests.e2e.cluster import Cluster


def unstored_pending(cluster: Cluster, database: sqlite3.Connection) -> int:
    """Entries pending in the ingest group whose conversation the SQLite file does not hold."""
    keys = Keys(cluster.prefix)
    client = redis.Redis.from_url(cluster.redis.url)
    try:
        pending = client.xpending_range(keys.conversations, keys.ingest_group, "-", "+", 10_000)
        pipeline = client.pipeline(transaction=False)
        for entry in pending:
            pipeline.xrange(keys.conversations, entry["message_id"], entry["message_id"])
        unstored = 0
        for found in pipeline.execute():
            if not found or STREAM_FIELD not in found[0][1]:
                continue  # trimmed, or not a record: the control plane acks those without storing
            conversation_id = ConversationRecord.unpack(found[0][1][STREAM_FIELD]).id
            row = database.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            unstored += row is None
        return unstored
    finally:
        client.close()


def kill_holding_a_batch(cluster: Cluster, timeout_s: float, then: Callable[[], None] = lambda: None) -> int:
    """SIGKILL the running control plane once it holds entries read from the stream and not stored.

    `then` runs once the write lock is held: it (or a load already running) must make runs, so
    that entries arrive for the control plane to read. Returns how many such entries it held.
    (The control plane is started before the lock is taken: its start-up may write to SQLite.)
    """
    control_plane = cluster.control_plane
    assert control_plane is not None and control_plane.running, "start the control plane first"
    database = sqlite3.connect(cluster.database_path, timeout=timeout_s, isolation_level=None)
    try:
        database.execute("BEGIN IMMEDIATE")  # waits for the control plane's transaction to end
        then()
        deadline = time.monotonic() + timeout_s
        while not (held := unstored_pending(cluster, database)):
            assert control_plane.running, f"the control plane died\n{control_plane.describe_log()}"
            assert time.monotonic() < deadline, (
                f"the control plane read no entry it could not store in {timeout_s:.0f} s (waiting, "
                f"not asserting: entries must be arriving)\n{control_plane.describe_log()}"
            )
            time.sleep(0.005)
        control_plane.kill()
        return held
    finally:
        database.execute("ROLLBACK")
        database.close()
