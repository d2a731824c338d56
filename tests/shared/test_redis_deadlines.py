"""A client with a command timeout gives up on a Redis that hangs, once; failures read clearly.

The hanging Redis is a listening socket that accepts connections and never answers (what a
SIGSTOPped redis-server looks like from outside: the kernel completes the handshake). It
counts connections: a command sent again after a timeout would come on a new one.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.redis import connect, describe_failure, unavailable


class SilentServer:
    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self._listener.getsockname()[1]}/0"
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections.append(connection)  # held open, never read, never answered

    def close(self) -> None:
        self._listener.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


async def test_a_hanging_redis_times_out_and_the_command_is_not_sent_again(silent: SilentServer) -> None:
    with pytest.raises(RuntimeError) as failed:
        await connect(silent.url, attempts=1, command_timeout_s=0.2)

    assert isinstance(failed.value.__cause__, RedisTimeoutError), repr(failed.value.__cause__)
    assert len(silent.connections) == 1, "a timed-out command was sent again on new connections"


def test_failures_are_worded_for_the_caller_with_the_setting_to_look_at() -> None:
    assert describe_failure(RedisTimeoutError("Timeout reading from 10.0.0.1:6379")) == (
        "Redis did not answer in time (FFAAS_REDIS_TIMEOUT_MS)"
    )
    assert describe_failure(TimeoutError()) == "Redis did not answer in time (FFAAS_REDIS_TIMEOUT_MS)"
    assert describe_failure(RedisConnectionError("refused")) == "Redis unavailable (FFAAS_REDIS_URL)"
    failure = unavailable("deploy d is stored but could not be published", RedisTimeoutError())
    assert (failure.status, failure.headers) == (503, {"Retry-After": "1"})
    assert failure.message == (
        "deploy d is stored but could not be published: Redis did not answer in time "
        "(FFAAS_REDIS_TIMEOUT_MS); retry later"
    )
