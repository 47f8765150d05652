"""A clock in seconds that moves only when a test sets it, for what takes ``time.monotonic``."""

from __future__ import annotations


class Clock:
    """``time.monotonic``'s stand-in: ``now`` seconds, set by the test."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
