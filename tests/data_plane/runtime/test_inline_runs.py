"""Which runs may use the event-loop thread: bounded per run, per loop turn and per module, shown
with a fake clock (each "run" takes exactly the time the test says) on a real event loop."""

from __future__ import annotations

import asyncio

from data_plane.runtime.inline_runs import MIN_SAMPLES, InlineRuns


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_inline(
    inline: InlineRuns, clock: FakeClock, key: str, ms: float, *, interrupted: bool = False
) -> bool:
    """One run of `key` taking `ms`: True if it was made inline."""
    if not inline.admit(key):
        return False
    started = clock()
    clock.now += ms / 1000
    inline.ran_inline(key, clock() - started, interrupted=interrupted)
    return True


def test_a_module_always_just_under_the_budget_moves_to_the_pool() -> None:
    async def scenario() -> list[bool]:
        clock = FakeClock()
        inline = InlineRuns(5, clock=clock)
        where = []
        for _ in range(10):
            where.append(run_inline(inline, clock, "wagi:heavy", 4.9))
            await asyncio.sleep(0)  # one run per loop turn: the turn bound plays no part
        assert inline.pool_only == 1 and inline.pool_runs == 10 - 1 - MIN_SAMPLES
        return where

    # The first run warms up (not measured); after MIN_SAMPLES more, the module has moved.
    assert asyncio.run(scenario()) == [True] * (1 + MIN_SAMPLES) + [False] * (10 - 1 - MIN_SAMPLES)


def test_a_slow_first_run_does_not_move_a_fast_module() -> None:
    async def scenario() -> bool:
        clock = FakeClock()
        inline = InlineRuns(5, clock=clock)
        where = [run_inline(inline, clock, "wagi:hello", 4.0)]  # cold: faulting in code and memory
        for _ in range(50):
            await asyncio.sleep(0)
            where.append(run_inline(inline, clock, "wagi:hello", 0.1))
        return all(where) and inline.pool_only == 0

    assert asyncio.run(scenario())


def test_a_fast_module_stays_inline() -> None:
    async def scenario() -> bool:
        clock = FakeClock()
        inline = InlineRuns(5, clock=clock)
        where = []
        for _ in range(200):
            where.append(run_inline(inline, clock, "wagi:hello", 0.1))
            await asyncio.sleep(0)
        return all(where) and inline.pool_only == 0

    assert asyncio.run(scenario())


def test_inline_time_in_one_loop_turn_is_bounded_then_the_next_turn_starts_afresh() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        inline = InlineRuns(5, clock=clock)
        # Within one turn (no await): runs of different, fast-on-average modules.
        assert [run_inline(inline, clock, f"wagi:{n}", 2.0) for n in range(5)] == [
            True,
            True,
            True,
            False,
            False,
        ]
        await asyncio.sleep(0)
        assert run_inline(inline, clock, "wagi:5", 2.0)
        assert inline.pool_only == 0  # the turn bound moves runs, not modules

    asyncio.run(scenario())


def test_an_interrupted_run_moves_its_module_at_once() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        inline = InlineRuns(5, clock=clock)
        assert run_inline(inline, clock, "js:loop", 5.0, interrupted=True)
        await asyncio.sleep(0)
        assert not inline.admit("js:loop") and inline.admit("js:other")

    asyncio.run(scenario())


def test_a_zero_budget_makes_every_run_on_the_pool() -> None:
    inline = InlineRuns(0)
    assert not inline.admit("wagi:hello") and inline.pool_runs == 1
