"""Waiting for an awaitable at most so long, and answering on time even when it cannot stop.

:func:`asyncio.wait_for` cancels the awaitable at the deadline and then waits
for it to unwind. Most awaitables unwind at once; a psycopg query on a dead
link does not: on cancellation psycopg first asks the server to cancel the
query (on a new connection, up to five seconds) and then waits for the
query to end (five more). A caller promised an answer within five seconds
would get it after fifteen. :func:`within` cancels the awaitable at the
deadline and leaves it to unwind on its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


async def within[T](
    awaitable: Awaitable[T],
    timeout: float,
    on_abandon: Callable[[asyncio.Future[Any]], None] | None = None,
) -> T:
    """``awaitable``'s result, or :class:`TimeoutError` once ``timeout`` seconds have passed.

    At the deadline the awaitable is cancelled and left to unwind in the
    background; ``on_abandon`` (if given) is called with it once it has.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(0.0, timeout))
    except asyncio.CancelledError:
        task.cancel()
        raise
    if done:
        return task.result()
    task.cancel()

    def unwound(task: asyncio.Future[Any]) -> None:
        _read_outcome(task)
        if on_abandon is not None:
            on_abandon(task)

    task.add_done_callback(unwound)
    raise TimeoutError(f"no answer within {timeout:g}s")


def _read_outcome(task: asyncio.Future[Any]) -> None:
    """Read an abandoned task's outcome, so asyncio does not report it as never retrieved."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("an abandoned request ended with %r", task.exception())
