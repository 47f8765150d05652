"""Lease heartbeats for the tasks a node executes, sent only for tasks that outlive an interval.

A worker holds a task's lease from ``task.acquire`` for ``ttl``; it renews it
with ``task.heartbeat`` while it keeps executing. The SDK's heartbeat sends
one the moment a task starts and stops its loop whenever no task is left, so
a node whose tasks finish in milliseconds (most steps of these flows) renews,
on almost every task, a lease it acquired an instant before. This one waits
an interval (``ttl / 2``, as the SDK's) before the first beat, so only a task
still running by then is renewed, with the same margin before its lease
ends. It plugs into the SDK's ``heartbeat=`` seam.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from resonate.send import TaskRef
from resonate.timing import Sleeper, sleep

logger = logging.getLogger(__name__)


class HeartbeatSender(Protocol):
    async def task_heartbeat(self, pid: str, tasks: list[TaskRef]) -> None: ...


class IntervalHeartbeat:
    """Renews the leases of the tasks still executing, every ``interval_s``; the SDK's protocol."""

    def __init__(
        self, pid: str, interval_s: float, sender: HeartbeatSender, sleeper: Sleeper = sleep
    ) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.sender = sender
        self.sleeper = sleeper
        self.active: dict[str, int] = {}
        self._loop_task: asyncio.Task[None] | None = None

    def start(self, task_id: str, task_version: int) -> None:
        self.active[task_id] = task_version
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._beat())

    def stop(self, task_id: str) -> None:
        self.active.pop(task_id, None)
        if not self.active:
            self.shutdown()

    def shutdown(self) -> None:
        self.active.clear()
        loop_task, self._loop_task = self._loop_task, None
        if loop_task is not None:
            loop_task.cancel()

    async def _beat(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await self.sleeper(self.interval_s)
                tasks = [TaskRef(id=task, version=version) for task, version in self.active.items()]
                if not tasks:
                    continue
                try:
                    await self.sender.task_heartbeat(self.pid, tasks)
                except Exception as exc:  # keep beating: the next one may get through
                    logger.warning("heartbeat failed: %s", exc)
