"""A fast, exact client: `make_runs` calls one URL a given number of times over keep-alive connections.

wrk measures throughput but cannot stop after exactly N requests; a backlog of a
known size (and the conversation id of every run in it) needs this instead. Each
connection is a thread with its own `client.Connection`.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass

from bench.client import Connection

CONVERSATION_HEADER = "fh-conversation-id"


@dataclass(frozen=True)
class Runs:
    conversation_ids: list[str]
    """One per run that answered with a conversation id."""
    elapsed_s: float
    failures: dict[str, int]
    """Status (when not 2xx, or no conversation id) or exception name -> count."""

    @property
    def per_s(self) -> float:
        return len(self.conversation_ids) / self.elapsed_s if self.elapsed_s else 0.0


def make_runs(base_url: str, path: str, count: int, connections: int = 8) -> Runs:
    """GET `path` exactly `count` times, over `connections` connections in parallel."""
    numbers = itertools.count()
    ids: list[str] = []
    failures: Counter[str] = Counter()
    lock = threading.Lock()

    def work() -> None:
        with Connection(base_url) as connection:
            while next(numbers) < count:
                conversation_id, failure = one_run(connection, path)
                with lock:
                    if conversation_id is not None:
                        ids.append(conversation_id)
                    else:
                        failures[failure] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=work, name=f"runs-{index}") for index in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Runs(ids, time.perf_counter() - started, dict(failures))


def one_run(connection: Connection, path: str) -> tuple[str | None, str]:
    """GET `path`: (its conversation id, "") if it answered 2xx with one, else (None, what went wrong)."""
    try:
        response = connection.request("GET", path)
    except (OSError, http.client.HTTPException) as exc:
        return None, type(exc).__name__
    conversation_id = response.headers.get(CONVERSATION_HEADER)
    if 200 <= response.status < 300 and conversation_id:
        return conversation_id, ""
    return None, f"{response.status}" if conversation_id else f"{response.status} without a conversation id"
