"""The moving deadline: one timer however often it moves, and it comes at its own time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from asyncrpc.runtime.moving_deadline import MovingDeadline


class Clock:
    """Time moves only when the test says; each timer armed is kept to be fired by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.armed: list[tuple[float, Callable[[], object], asyncio.TimerHandle]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, (), asyncio.get_running_loop())
        self.armed.append((when, callback, handle))
        return handle

    def run_until(self, end: float) -> None:
        while due := sorted((t for t in self.armed if t[0] <= end), key=lambda t: t[0]):
            when, callback, handle = due[0]
            self.armed.remove(due[0])
            self.now = max(self.now, when)
            if not handle.cancelled():
                callback()
        self.now = end


def test_moved_often_it_arms_one_timer_and_comes_at_the_last_time_set() -> None:
    async def body() -> None:
        clock, came = Clock(), []
        deadline = MovingDeadline(lambda: came.append(clock.now), clock)
        for step in range(10):
            clock.now = step * 0.1
            deadline.set(clock.now + 1.0)
        assert len(clock.armed) == 1
        clock.run_until(1.85)
        assert came == []  # the first timer fired early and armed itself again
        clock.run_until(5.0)
        assert came == [1.9] and clock.armed == []

    asyncio.run(body())


def test_cleared_it_lapses_and_set_again_it_comes_at_the_new_time() -> None:
    async def body() -> None:
        clock, came = Clock(), []
        deadline = MovingDeadline(lambda: came.append(clock.now), clock)
        deadline.set(1.0)
        deadline.clear()
        clock.run_until(3.0)
        assert came == [] and clock.armed == []
        deadline.set(4.0)
        clock.run_until(10.0)
        assert came == [4.0]

    asyncio.run(body())


def test_cancelled_its_timer_stops_at_once() -> None:
    async def body() -> None:
        clock, came = Clock(), []
        deadline = MovingDeadline(lambda: came.append(clock.now), clock)
        deadline.set(1.0)
        deadline.cancel()
        assert clock.armed[0][2].cancelled()
        clock.run_until(3.0)
        assert came == []

    asyncio.run(body())
