"""A deadline that moves later often, kept by one event-loop timer.

A read deadline set anew with every request, a keep-alive timeout set anew
after every answer, a heartbeat's next beat: each moves later far more often
than it comes, and a timer made and cancelled at each move is most of what
it costs. :class:`MovingDeadline` keeps one timer: moving the deadline only
writes the new time down; the timer, when it fires before that time, arms
itself again for it; cleared, the deadline lets the timer lapse. So a move
costs no timer, and the deadline still comes at its own time, never sooner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    """What a deadline needs of the event loop: its time, and a timer at a time of it."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> asyncio.TimerHandle: ...


class MovingDeadline:
    """Calls ``expired`` once the time last :meth:`set` comes, unless cleared before.

    ``clock`` is the running event loop unless given (tests pass a manual one); it is
    looked up at the first :meth:`set`, so a deadline can be made outside a loop.
    """

    __slots__ = ("_clock", "_expired", "_timer", "when")

    def __init__(self, expired: Callable[[], None], clock: Clock | None = None) -> None:
        self._expired = expired
        self._clock = clock
        self._timer: asyncio.TimerHandle | None = None
        #: The clock time it comes at; None while cleared.
        self.when: float | None = None

    def set(self, when: float) -> None:
        """Come at ``when`` (not earlier than any time set before it)."""
        self.when = when
        if self._timer is None:
            self._timer = self.clock().call_at(when, self._fire)

    def clear(self) -> None:
        """Not come at all, until set again; the timer, if armed, lapses when it fires."""
        self.when = None

    def cancel(self) -> None:
        """Not come at all, and stop the timer now (its owner is done with it)."""
        self.when = None
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def clock(self) -> Clock:
        if self._clock is None:
            self._clock = asyncio.get_running_loop()
        return self._clock

    def _fire(self) -> None:
        self._timer = None
        when = self.when
        if when is None:
            return
        clock = self.clock()
        if clock.time() < when:  # armed for an earlier time: wait for this one
            self._timer = clock.call_at(when, self._fire)
            return
        self.when = None
        self._expired()
