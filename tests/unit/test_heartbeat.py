"""Lease heartbeats: a task still executing after an interval is renewed; a quick one never is."""

from __future__ import annotations

import asyncio

from resonate.send import TaskRef

from asyncrpc.network.heartbeat import IntervalHeartbeat


class Beats:
    """Records each heartbeat request; can fail the first ones."""

    def __init__(self, failures: int = 0) -> None:
        self.sent: list[list[TaskRef]] = []
        self.failures = failures

    async def task_heartbeat(self, pid: str, tasks: list[TaskRef]) -> None:
        assert pid == "node-1"
        self.sent.append(tasks)
        if len(self.sent) <= self.failures:
            raise ConnectionError("server away")


class StepSleeper:
    """Each sleep waits until the test lets one interval pass."""

    def __init__(self) -> None:
        self.intervals: list[float] = []
        self._tick = asyncio.Condition()
        self._passed = 0

    async def __call__(self, seconds: float) -> None:
        self.intervals.append(seconds)
        async with self._tick:
            target = self._passed + 1
            await self._tick.wait_for(lambda: self._passed >= target)

    async def pass_interval(self) -> None:
        async with self._tick:
            self._passed += 1
            self._tick.notify_all()
        for _ in range(5):
            await asyncio.sleep(0)


def test_a_task_that_ends_within_an_interval_is_never_renewed() -> None:
    async def body() -> list[list[TaskRef]]:
        beats, sleeper = Beats(), StepSleeper()
        heartbeat = IntervalHeartbeat("node-1", 2.5, beats, sleeper)
        for n in range(5):
            heartbeat.start(f"task-{n}", 1)
            await asyncio.sleep(0)
            heartbeat.stop(f"task-{n}")
        await sleeper.pass_interval()
        return beats.sent

    assert asyncio.run(body()) == []


def test_tasks_still_executing_are_renewed_every_interval_even_after_a_failure() -> None:
    async def body() -> tuple[list[list[TaskRef]], list[float]]:
        beats, sleeper = Beats(failures=1), StepSleeper()
        heartbeat = IntervalHeartbeat("node-1", 2.5, beats, sleeper)
        heartbeat.start("long", 3)
        await asyncio.sleep(0)
        assert beats.sent == []  # nothing at once: the lease was just acquired
        await sleeper.pass_interval()
        heartbeat.start("other", 1)
        await sleeper.pass_interval()
        heartbeat.stop("long")
        await sleeper.pass_interval()
        heartbeat.stop("other")
        await sleeper.pass_interval()
        heartbeat.shutdown()
        return beats.sent, sleeper.intervals

    sent, intervals = asyncio.run(body())
    assert sent == [
        [TaskRef(id="long", version=3)],
        [TaskRef(id="long", version=3), TaskRef(id="other", version=1)],
        [TaskRef(id="other", version=1)],
    ]
    assert set(intervals) == {2.5}
