"""A heap of (due time, id) entries whose stale ones are skipped, for the machine's timers.

A record's due time changes often (every heartbeat moves a lease), and
finding and removing its old entry would cost more than leaving it: so an
entry is only ever added, and ``live`` decides, when it reaches the top,
whether it still stands.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable


class TimerHeap:
    def __init__(self, live: Callable[[int, str], bool]) -> None:
        self._live = live
        self._heap: list[tuple[int, str]] = []

    def push(self, at: int, item: str) -> None:
        heapq.heappush(self._heap, (at, item))

    def reset(self, entries: Iterable[tuple[int, str]]) -> None:
        self._heap = list(entries)
        heapq.heapify(self._heap)

    def pop_due(self, now: int) -> list[str]:
        """The live entries due at ``now``, in (time, id) order, each id once."""
        due: dict[str, None] = {}
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, item = heapq.heappop(heap)
            if self._live(at, item):
                due[item] = None
        return list(due)

    def next_at(self) -> int | None:
        """When the earliest live entry is due (None: there is none)."""
        heap = self._heap
        while heap and not self._live(*heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None
