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
beat was answered (or failed). One
:class:`~asyncrpc.runtime.moving_deadline.MovingDeadline` on the clock (the
event loop by default) serves every spell: a start sets when the spell's first
beat is due, the end of a spell clears it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from resonate.send import TaskRef

from asyncrpc.runtime.moving_deadline import Clock, MovingDeadline

logger = logging.getLogger(__name__)


class HeartbeatSender(Protocol):
    async def task_heartbeat(self, pid: str, tasks: list[TaskRef]) -> None: ...


class IntervalHeartbeat:
    """Renews the leases of the tasks still executing, every ``interval_s``; the SDK's protocol."""

    def __init__(
        self, pid: str, interval_s: float, sender: HeartbeatSender, clock: Clock | None = None
    ) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.sender = sender
        self.active: dict[str, int] = {}
        #: When the current spell's next beat is due.
        self._next = MovingDeadline(self._on_due, clock)
        self._beat: asyncio.Task[None] | None = None  # a beat waiting for its answer

    def start(self, task_id: str, task_version: int) -> None:
        if not self.active:  # a busy spell begins
            self._next.set(self._next.clock().time() + self.interval_s)
        self.active[task_id] = task_version

    def stop(self, task_id: str) -> None:
        self.active.pop(task_id, None)
        if not self.active:
            self.shutdown()

    def shutdown(self) -> None:
        """End the busy spell: no more beats; one waiting for its answer is cancelled."""
        self.active.clear()
        self._next.clear()
        beat, self._beat = self._beat, None
        if beat is not None:
            beat.cancel()

    def _on_due(self) -> None:
        if not self.active or self._beat is not None:
            return  # no spell going (or its beat is on its way: its answer sets the next)
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
                self._next.set(self._next.clock().time() + self.interval_s)
