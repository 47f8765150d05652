"""Bounded waits: poll a condition until it holds, or fail saying what never happened."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

#: How often a wait looks again; start-up and recovery times are measured with these waits.
POLL_S = 0.01


def wait_until[T](predicate: Callable[[], T], timeout: float, what: str, poll: float = POLL_S) -> T:
    """Poll ``predicate`` every ``poll`` s until it is truthy; else raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(poll)


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The status of ``GET url``, or None when nothing answers."""
    try:
        return httpx.get(url, timeout=timeout).status_code
    except httpx.HTTPError:
        return None


def http_ok(url: str) -> bool:
    return http_status(url) == 200
