"""Clocks that move only when a test moves them: one for what takes ``time.monotonic``, one
for what takes an event loop's ``time`` and ``call_at``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Clock:
    """``time.monotonic``'s stand-in: ``now`` seconds, set by the test."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class LoopClock:
    """An event loop's ``time`` and ``call_at`` whose time moves only when the test moves it;
    each timer armed is kept, and fired by the test when its time comes."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], object], asyncio.TimerHandle]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, (), asyncio.get_running_loop())
        self.timers.append((when, callback, handle))
        return handle

    @property
    def armed(self) -> int:
        """How many timers are armed and not cancelled."""
        return sum(1 for _, _, handle in self.timers if not handle.cancelled())

    def run_until(self, end: float) -> None:
        """Move time on to ``end``, firing each timer that comes due, in order."""
        while self._fire_next(end):
            pass
        self.now = end

    async def advance(self, seconds: float, turns: int = 5) -> None:
        """Move time on by ``seconds`` as :meth:`run_until` does, giving the event loop
        ``turns`` turns after each timer (to let what it started run to its answer)."""
        end = self.now + seconds
        while self._fire_next(end):
            for _ in range(turns):
                await asyncio.sleep(0)
        self.now = end

    def _fire_next(self, end: float) -> bool:
        due = sorted((t for t in self.timers if t[0] <= end), key=lambda t: t[0])
        if not due:
            return False
        when, callback, handle = due[0]
        self.timers.remove(due[0])
        self.now = max(self.now, when)
        if not handle.cancelled():
            callback()
        return True
