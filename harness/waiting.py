"""Bounded waits: poll a condition until it holds, or fail saying what never happened.

The HTTP probes share one client. ``httpx.get`` builds a client per call, and
with it an SSL context (tens of milliseconds of CPU): polled every
:data:`POLL_S`, that alone keeps a core busy while the processes waited for
need it. The shared client keeps no idle connection, so every probe opens a
new one and a restarted server is never asked over a stale socket.
"""

from __future__ import annotations

import functools
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


@functools.cache
def probe_client() -> httpx.Client:
    """The client of every probe in this process: built once, no idle connection kept."""
    return httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))


def http_get(url: str, timeout: float = 1.0) -> httpx.Response:
    """``GET url`` with the shared probe client (cheap enough to poll)."""
    return probe_client().get(url, timeout=timeout)


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The status of ``GET url``, or None when nothing answers."""
    try:
        return http_get(url, timeout=timeout).status_code
    except httpx.HTTPError:
        return None


def http_ok(url: str) -> bool:
    return http_status(url) == 200
