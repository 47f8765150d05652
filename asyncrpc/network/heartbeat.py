"""Lease heartbeats for the tasks a node executes, sent only for tasks that outlive an interval.

A worker holds a task's lease from ``task.acquire`` for ``ttl``; it renews it
with ``task.heartbeat`` while it keeps executing. The SDK's heartbeat sends
one the moment a task starts and stops its loop whenever no task is left, so
a node whose tasks finish in milliseconds (most steps of these flows) renews,
on almost every task, a lease it acquired an instant before. This one waits
an interval (``ttl / 2``, as the SDK's) before the first beat, so only a task
still running by then is renewed, with the same margin before its lease
ends. It plugs into the SDK's ``heartbeat=`` seam.

A node starts and stops the heartbeat for every task it runs, so both cost
little: no task and no timer of their own. A *busy spell* runs from a start
while no task is active to the stop that leaves none; its first beat is due
an interval after it began, and each next one an interval after the last
beat was answered (or failed). One loop timer, armed on the clock
(:class:`Clock`, the event loop by default), serves every spell: a start only
writes down when the spell's first beat is due, and the timer, when it fires
before that (it was armed for an earlier spell), moves on to it; with no
spell going, it lapses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from resonate.send import TaskRef

logger = logging.getLogger(__name__)


class HeartbeatSender(Protocol):
    async def task_heartbeat(self, pid: str, tasks: list[TaskRef]) -> None: ...


class Clock(Protocol):
    """What the heartbeat needs of the event loop: its time and a timer at a time of it."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> asyncio.TimerHandle: ...


class IntervalHeartbeat:
    """Renews the leases of the tasks still executing, every ``interval_s``; the SDK's protocol."""

    def __init__(
        self, pid: str, interval_s: float, sender: HeartbeatSender, clock: Clock | None = None
    ) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.sender = sender
        self.active: dict[str, int] = {}
        self._clock = clock
        self._due = 0.0  # clock time of the current spell's next beat
        self._timer: asyncio.TimerHandle | None = None
        self._beat: asyncio.Task[None] | None = None  # a beat waiting for its answer

    def start(self, task_id: str, task_version: int) -> None:
        if not self.active:  # a busy spell begins
            clock = self._clock if self._clock is not None else self._loop_clock()
            self._due = clock.time() + self.interval_s
            if self._timer is None:
                self._timer = clock.call_at(self._due, self._on_timer)
        self.active[task_id] = task_version

    def stop(self, task_id: str) -> None:
        self.active.pop(task_id, None)
        if not self.active:
            self.shutdown()

    def shutdown(self) -> None:
        """End the busy spell: no more beats; one waiting for its answer is cancelled."""
        self.active.clear()
        beat, self._beat = self._beat, None
        if beat is not None:
            beat.cancel()

    def _loop_clock(self) -> Clock:
        self._clock = asyncio.get_running_loop()
        return self._clock

    def _on_timer(self) -> None:
        self._timer = None
        if not self.active or self._beat is not None:
            return  # no spell going (or its beat is on its way): the timer lapses
        assert self._clock is not None
        if self._clock.time() < self._due:  # armed for an earlier spell: wait for this one's
            self._timer = self._clock.call_at(self._due, self._on_timer)
            return
        tasks = [TaskRef(id=task, version=version) for task, version in self.active.items()]
        self._beat = asyncio.get_running_loop().create_task(self._send(tasks))

    async def _send(self, tasks: list[TaskRef]) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await self.sender.task_heartbeat(self.pid, tasks)
            except Exception as exc:  # keep beating: the next one may get through
                logger.warning("heartbeat failed: %s", exc)
            self._beat = None
            if self.active:  # the spell goes on: the next beat an interval from now
                assert self._clock is not None
                self._due = self._clock.time() + self.interval_s
                if self._timer is None:
                    self._timer = self._clock.call_at(self._due, self._on_timer)
