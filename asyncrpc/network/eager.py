"""Tasks that start in the turn of the event loop that creates them.

A pushed message or a new flow's start reaches the SDK through a callback or a
call that creates a task for the work; an ordinary task would run on the next
turn of the event loop, after whatever else that turn holds. Created under
:func:`eager_tasks`, it runs at once until its first wait, so the protocol
request it sends leaves in the same turn.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def eager_tasks() -> Iterator[None]:
    """Tasks created inside the block start at once, in the caller's turn (eager tasks).

    Code run inside the block does not yield to the event loop, so no other task
    runs while the loop's task factory is swapped.
    """
    loop = asyncio.get_running_loop()
    factory = loop.get_task_factory()
    loop.set_task_factory(asyncio.eager_task_factory)
    try:
        yield
    finally:
        loop.set_task_factory(factory)
