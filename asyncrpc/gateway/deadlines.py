"""Deadlines for the flows waiting on their results: one timer for all of them.

A flow that waits for its result waits at most ``wait`` seconds
(:func:`asyncrpc.gateway.invocations.result`). :func:`asyncio.timeout` would
make an event-loop timer per flow and cancel it when the result comes, which is
almost always long before the deadline; on uvloop that is a timer started and
stopped per flow. :class:`Deadlines` keeps the deadlines in a heap and one timer
for the earliest one that is still waited on: a flow's deadline costs a push
and, when its result comes, a flag. When the timer fires it cancels the tasks
whose deadline has come, as :func:`asyncio.timeout` does, and sets itself for
the next deadline still waited on; :attr:`Deadline.fired` tells the waiting task
that the cancellation is its deadline's, for it to take back (``uncancel``) as
:func:`asyncio.timeout` does.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import weakref
from typing import Any

#: Seconds early a deadline may be met, as asyncio's own loop runs timers (its clock resolution).
CLOCK_RESOLUTION = 0.001
#: Finished deadlines the heap may hold beyond twice the waiting ones before it is rebuilt.
SLACK = 64


class Deadline:
    """One task's deadline; :meth:`done` once it no longer waits."""

    __slots__ = ("_owner", "fired", "task", "waiting", "when")

    def __init__(self, owner: Deadlines, when: float, task: asyncio.Task[Any]) -> None:
        self._owner = owner
        self.when = when
        self.task = task
        self.waiting = True
        #: Whether the deadline came while the task waited (its task was cancelled).
        self.fired = False

    def done(self) -> None:
        """The task no longer waits: its deadline cancels nothing."""
        if self.waiting:
            self.waiting = False
            self._owner._finished()


class Deadlines:
    """The deadlines of one event loop's waiting tasks, met by one timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._waiting = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    def at(self, when: float, task: asyncio.Task[Any]) -> Deadline:
        """Cancel ``task`` at ``when`` (the loop's time) unless its deadline is done by then."""
        deadline = Deadline(self, when, task)
        heapq.heappush(self._heap, (when, next(self._order), deadline))
        self._waiting += 1
        if when < self._timer_at:
            self._set_timer(when)
        return deadline

    def _finished(self) -> None:
        self._waiting -= 1
        if len(self._heap) > 2 * self._waiting + SLACK:
            self._heap = [entry for entry in self._heap if entry[2].waiting]
            heapq.heapify(self._heap)

    def _set_timer(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        heap = self._heap
        due = self._loop.time() + CLOCK_RESOLUTION
        while heap and (not heap[0][2].waiting or heap[0][0] <= due):
            deadline = heapq.heappop(heap)[2]
            if deadline.waiting:
                deadline.waiting, deadline.fired = False, True
                self._waiting -= 1
                deadline.task.cancel()
        if heap:
            self._set_timer(heap[0][0])


_of_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = (
    weakref.WeakKeyDictionary()
)


def of_loop(loop: asyncio.AbstractEventLoop) -> Deadlines:
    """The deadlines of ``loop``'s tasks (one set, and one timer, per event loop)."""
    deadlines = _of_loop.get(loop)
    if deadlines is None:
        deadlines = _of_loop[loop] = Deadlines(loop)
    return deadlines
