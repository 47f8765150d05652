"""Tasks that start in the turn of the event loop that creates them.

A pushed message or a new flow's start reaches the SDK through a callback or a
call that creates a task for the work; an ordinary task would run on the next
turn of the event loop, after whatever else that turn holds. Created under
:func:`eager_tasks`, it runs at once until its first wait, so the protocol
request it sends leaves in the same turn.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class EagerTasks:
    """The block of :func:`eager_tasks`: a plain context manager, entered once per message.

    A class rather than :func:`contextlib.contextmanager`: it is entered for every
    message a process receives, and a generator-based one costs a generator and
    its wrapper each time.
    """

    __slots__ = ("_factory", "_loop")

    def __enter__(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._factory = loop.get_task_factory()
        loop.set_task_factory(asyncio.eager_task_factory)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._loop.set_task_factory(self._factory)


def eager_tasks() -> EagerTasks:
    """Tasks created inside the block start at once, in the caller's turn (eager tasks).

    Code run inside the block does not yield to the event loop, so no other task
    runs while the loop's task factory is swapped.
    """
    return EagerTasks()
