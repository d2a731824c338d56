"""FreshRunLimit: at most `limit` fresh runs; old runs stop counting; cancelled waiters lose nothing."""

from __future__ import annotations

import asyncio

import pytest

from data_plane.runtime.fresh_runs import FreshRunLimit


async def hold(limit: FreshRunLimit, started: list[str], name: str, seconds: float) -> None:
    async with limit.slot():
        started.append(name)
        await asyncio.sleep(seconds)


def test_at_most_limit_fresh_runs_and_the_next_waits_for_a_slot() -> None:
    async def scenario() -> list[str]:
        limit = FreshRunLimit(limit=2, age_s=10)
        started: list[str] = []
        tasks = [asyncio.create_task(hold(limit, started, name, 0.05)) for name in "abc"]
        await asyncio.sleep(0.01)
        assert started == ["a", "b"] and limit.fresh == 2
        await asyncio.gather(*tasks)
        assert limit.fresh == 0
        return started

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_a_long_run_stops_counting_once_it_is_old() -> None:
    async def scenario() -> float:
        limit = FreshRunLimit(limit=1, age_s=0.02)
        started: list[str] = []
        looping = asyncio.create_task(hold(limit, started, "looping", 5))
        await asyncio.sleep(0)
        begun = asyncio.get_running_loop().time()
        await hold(limit, started, "quick", 0)
        waited = asyncio.get_running_loop().time() - begun
        assert started == ["looping", "quick"] and limit.fresh == 0
        looping.cancel()
        await asyncio.gather(looping, return_exceptions=True)
        assert limit.fresh == 0
        return waited

    assert asyncio.run(scenario()) < 1


@pytest.mark.parametrize("handed_over_first", [False, True])
def test_a_cancelled_waiter_keeps_no_slot(handed_over_first: bool) -> None:
    async def scenario() -> None:
        limit = FreshRunLimit(limit=1, age_s=10)
        started: list[str] = []
        first = asyncio.create_task(hold(limit, started, "first", 0.02))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(hold(limit, started, "cancelled", 0))
        await asyncio.sleep(0)
        if handed_over_first:
            await first  # the slot is handed to the waiter, which is cancelled before it resumes
        waiter.cancel()
        await asyncio.gather(first, waiter, return_exceptions=True)
        assert limit.fresh == 0
        await hold(limit, started, "later", 0)
        assert started[-1] == "later" and limit.fresh == 0

    asyncio.run(scenario())
