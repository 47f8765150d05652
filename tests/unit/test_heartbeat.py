"""Lease heartbeats: a task still executing after an interval is renewed; a quick one never is."""

from __future__ import annotations

import asyncio

from resonate.send import TaskRef

from asyncrpc.network.heartbeat import IntervalHeartbeat
from tests.support.clocks import LoopClock


class Beats:
    """Records each heartbeat request (and when it was sent); can fail the first ones."""

    def __init__(self, clock: LoopClock, failures: int = 0) -> None:
        self.clock = clock
        self.sent: list[list[TaskRef]] = []
        self.at: list[float] = []
        self.failures = failures

    async def task_heartbeat(self, pid: str, tasks: list[TaskRef]) -> None:
        assert pid == "node-1"
        self.sent.append(tasks)
        self.at.append(self.clock.now)
        if len(self.sent) <= self.failures:
            raise ConnectionError("server away")


def test_a_task_that_ends_within_an_interval_is_never_renewed() -> None:
    async def body() -> tuple[list[list[TaskRef]], int]:
        clock = LoopClock()
        beats = Beats(clock)
        heartbeat = IntervalHeartbeat("node-1", 2.5, beats, clock)
        for n in range(5):
            heartbeat.start(f"task-{n}", 1)
            await clock.advance(0.4)
            heartbeat.stop(f"task-{n}")
        await clock.advance(10)
        return beats.sent, len(clock.timers)

    sent, timers_left = asyncio.run(body())
    assert sent == []
    assert timers_left == 0  # the one timer lapsed: nothing keeps firing while idle


def test_tasks_still_executing_are_renewed_every_interval_even_after_a_failure() -> None:
    async def body() -> list[tuple[float, list[TaskRef]]]:
        clock = LoopClock()
        beats = Beats(clock, failures=1)
        heartbeat = IntervalHeartbeat("node-1", 2.5, beats, clock)
        heartbeat.start("long", 3)
        await clock.advance(2.4)
        assert beats.sent == []  # nothing before an interval: the lease was just acquired
        await clock.advance(0.1)
        heartbeat.start("other", 1)
        await clock.advance(2.5)
        heartbeat.stop("long")
        await clock.advance(2.5)
        heartbeat.stop("other")
        await clock.advance(2.5)
        heartbeat.shutdown()
        return list(zip(beats.at, beats.sent, strict=True))

    assert asyncio.run(body()) == [
        (2.5, [TaskRef(id="long", version=3)]),
        (5.0, [TaskRef(id="long", version=3), TaskRef(id="other", version=1)]),
        (7.5, [TaskRef(id="other", version=1)]),
    ]


def test_a_busy_spell_gets_its_first_beat_an_interval_after_it_began() -> None:
    # One timer serves every spell: armed for an earlier spell, it fires early for a
    # later one, which must still get its whole interval before its first beat.
    async def body() -> list[tuple[float, list[TaskRef]]]:
        clock = LoopClock()
        beats = Beats(clock)
        heartbeat = IntervalHeartbeat("node-1", 2.5, beats, clock)
        heartbeat.start("quick", 1)
        await clock.advance(0.5)
        heartbeat.stop("quick")
        await clock.advance(1.0)
        heartbeat.start("slow", 2)  # at 1.5: its first beat is due at 4.0, not at 2.5
        await clock.advance(2.4)
        assert beats.sent == []
        await clock.advance(0.2)
        heartbeat.shutdown()
        return list(zip(beats.at, beats.sent, strict=True))

    assert asyncio.run(body()) == [(4.0, [TaskRef(id="slow", version=2)])]


def test_shutdown_cancels_a_beat_waiting_for_its_answer() -> None:
    class Hanging:
        def __init__(self) -> None:
            self.cancelled = False

        async def task_heartbeat(self, pid: str, tasks: list[TaskRef]) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise

    async def body() -> bool:
        clock = LoopClock()
        sender = Hanging()
        heartbeat = IntervalHeartbeat("node-1", 2.5, sender, clock)
        heartbeat.start("long", 1)
        await clock.advance(2.5)
        heartbeat.stop("long")
        for _ in range(5):
            await asyncio.sleep(0)
        return sender.cancelled

    assert asyncio.run(body())
