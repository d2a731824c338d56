"""Which runs may use the event-loop thread: bounded per run, per loop turn and per module, shown
with a fake clock (each "run" takes exactly the time the test says) on a real event loop."""

from __future__ import annotations

import asyncio

from data_plane.runtime.inline_runs import LOW_CPU_INTERRUPTIONS, MIN_SAMPLES, InlineRuns


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


def test_one_run_that_lost_its_core_does_not_move_a_fast_module() -> None:
    """A 0.1 ms module whose run once counted 29 ms (measured: the loop thread lost its core on a
    loaded machine) stays inline; three such runs in a row move it, as they would a slow module."""

    async def scenario() -> None:
        clock = FakeClock()
        inline = InlineRuns(5, clock=clock)
        for _ in range(20):
            assert run_inline(inline, clock, "wagi:hello", 0.1)
            await asyncio.sleep(0)
        assert run_inline(inline, clock, "wagi:hello", 29.0)
        for _ in range(20):
            await asyncio.sleep(0)
            assert run_inline(inline, clock, "wagi:hello", 0.1)
        assert inline.pool_only == 0
        for _ in range(3):
            await asyncio.sleep(0)
            assert run_inline(inline, clock, "wagi:hello", 29.0)
        assert inline.pool_only == 1 and not inline.admit("wagi:hello")

    asyncio.run(scenario())


def test_runs_interrupted_with_little_cpu_move_their_module_after_a_few() -> None:
    """Cut off by the budget's wall clock having used under half of it in CPU (it lost its core, or
    slept): made again on the pool, and its module moves only after LOW_CPU_INTERRUPTIONS such runs."""

    async def scenario() -> None:
        clock = FakeClock()
        inline = InlineRuns(5, clock=clock)
        for _ in range(LOW_CPU_INTERRUPTIONS - 1):
            assert run_inline(inline, clock, "wagi:hello", 1.0, interrupted=True)
            await asyncio.sleep(0)
            assert inline.admit("wagi:hello")
            await asyncio.sleep(0)
        assert run_inline(inline, clock, "wagi:hello", 1.0, interrupted=True)
        assert inline.pool_only == 1 and not inline.admit("wagi:hello")

    asyncio.run(scenario())


def test_a_zero_budget_makes_every_run_on_the_pool() -> None:
    inline = InlineRuns(0)
    assert not inline.admit("wagi:hello") and inline.pool_runs == 1
