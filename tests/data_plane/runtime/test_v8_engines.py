"""V8Engines against real Node.js engine workers (engines/v8/worker.js, isolated-vm): the protocol,
fresh state per run in reused isolates, the log budget kept in the isolate, and the OS memory cap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from data_plane.runtime.v8_engines import MIB, EngineSettings, V8Engines

REQUEST = json.dumps({"method": "GET", "path": "/", "query": "", "headers": {}, "body": "", "version": "1.1"})


def settings(**changes: Any) -> EngineSettings:
    return EngineSettings(
        **{"engines": 1, "max_runs": 2, "max_memory_bytes": 16 * MIB, "restart_after": 1000, **changes}
    )


async def run_of(engines: V8Engines, source: str, *, max_log_bytes: int = 1000) -> list[dict[str, Any]]:
    """Every message of one run, up to its end."""
    messages = []
    async with engines.run(str(hash(source)), source, REQUEST, False, 2000, max_log_bytes) as run:
        while True:
            messages.append(await run.next())
            if messages[-1]["t"] in ("done", "fail"):
                return messages


def value_of(messages: list[dict[str, Any]]) -> Any:
    assert messages[-1]["t"] == "done", messages[-1]
    return json.loads(messages[-1]["result"])["value"]


async def test_each_run_has_a_fresh_global_object_though_isolates_and_code_are_reused() -> None:
    engines = V8Engines(settings())
    await engines.start()
    try:
        counting = (
            "var seen = (globalThis.seen || 0) + 1; function main(r) { return [seen, typeof leftover]; }"
        )
        leaving = "function main(r) { globalThis.leftover = 1; Object.prototype.polluted = 1; return 'x'; }"
        answers = []
        for _ in range(5):  # more runs than the worker has isolates: the same isolate serves several
            answers.append(value_of(await run_of(engines, counting)))
            value_of(await run_of(engines, leaving))
        probe = "function main(r) { return [typeof leftover, ({}).polluted === undefined]; }"
        assert value_of(await run_of(engines, probe)) == ["undefined", True]
    finally:
        await engines.close()
    assert answers == [[1, "undefined"]] * 5


async def test_a_processor_logging_without_end_sends_no_more_than_its_log_budget() -> None:
    engines = V8Engines(settings())
    await engines.start()
    try:
        messages = await run_of(
            engines,
            "function main(r) { for (let i = 0; i < 100000; i++) console.log('0123456789'); return 1; }",
            max_log_bytes=100,
        )
    finally:
        await engines.close()
    logs = [m for m in messages if m["t"] == "log"]
    # Lines go out until they passed the budget (the data plane then writes the cut notice).
    assert len(logs) == 11 and value_of(messages) == 1


def test_each_worker_runs_under_its_rlimit_data_sized_from_the_settings() -> None:
    chosen = settings(engines=2, max_runs=8, max_memory_bytes=64 * MIB)
    # Four runs per worker, each isolate at up to twice its limit, and the worker's own 256 MiB.
    assert chosen.data_limit_bytes == (256 + 4 * 2 * 64) * MIB


async def test_the_worker_process_has_the_rlimit_data_it_was_given() -> None:
    engines = V8Engines(settings())
    await engines.start()
    try:
        (pid,) = engines.pids
        limits = Path(f"/proc/{pid}/limits").read_text().splitlines()
    finally:
        await engines.close()
    (data,) = [line for line in limits if line.startswith("Max data size")]
    assert data.split()[3:5] == [str(settings().data_limit_bytes)] * 2
