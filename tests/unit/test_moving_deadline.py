"""The moving deadline: one timer however often it moves, and it comes at its own time."""

from __future__ import annotations

import asyncio

from asyncrpc.runtime.moving_deadline import MovingDeadline
from tests.support.clocks import LoopClock


def test_moved_often_it_arms_one_timer_and_comes_at_the_last_time_set() -> None:
    async def body() -> None:
        clock, came = LoopClock(), []
        deadline = MovingDeadline(lambda: came.append(clock.now), clock)
        for step in range(10):
            clock.now = step * 0.1
            deadline.set(clock.now + 1.0)
        assert len(clock.timers) == 1
        clock.run_until(1.85)
        assert came == []  # the first timer fired early and armed itself again
        clock.run_until(5.0)
        assert came == [1.9] and clock.timers == []

    asyncio.run(body())


def test_cleared_it_lapses_and_set_again_it_comes_at_the_new_time() -> None:
    async def body() -> None:
        clock, came = LoopClock(), []
        deadline = MovingDeadline(lambda: came.append(clock.now), clock)
        deadline.set(1.0)
        deadline.clear()
        clock.run_until(3.0)
        assert came == [] and clock.timers == []
        deadline.set(4.0)
        clock.run_until(10.0)
        assert came == [4.0]

    asyncio.run(body())


def test_cancelled_its_timer_stops_at_once() -> None:
    async def body() -> None:
        clock, came = LoopClock(), []
        deadline = MovingDeadline(lambda: came.append(clock.now), clock)
        deadline.set(1.0)
        deadline.cancel()
        assert clock.timers[0][2].cancelled()
        clock.run_until(3.0)
        assert came == []

    asyncio.run(body())
