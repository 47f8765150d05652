"""One reader for every open page: a source read once per interval while anyone watches.

Each page's event stream shows the newest invocations, and reading them asks
the server. Read per stream, the cost grows with the pages open (five tabs,
five readers), so a :class:`SharedPoll` reads once per interval in one task
that runs while at least one stream watches, and every stream takes its latest
answer. The task stops when the last stream ends. A stream takes it with
:meth:`SharedPoll.available`, which answers at once (:data:`NOT_YET` while the
first read of a round is under way), so a slow server never holds up what else
the stream sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from asyncrpc.dashboard.events import NOT_YET, Pending

logger = logging.getLogger("asyncrpc.dashboard")


class SharedPoll:
    """``read`` every ``interval`` seconds while anyone is :meth:`watching`; :meth:`latest`."""

    def __init__(
        self,
        read: Callable[[], Awaitable[Any]],
        interval: float,
        initial: Any = None,
        *,
        sleeper: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._read = read
        self._interval = interval
        self._sleeper = sleeper
        self._latest = initial
        self._watchers = 0
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Event | None = None
        #: How many reads were made (what tests count).
        self.reads = 0

    @property
    def watchers(self) -> int:
        return self._watchers

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[SharedPoll]:
        """Keep the reads going for the block (one task, whatever the number of blocks)."""
        self._watchers += 1
        if self._task is None:
            self._first = asyncio.Event()
            self._task = asyncio.create_task(self._poll(self._first))
        try:
            yield self
        finally:
            self._watchers -= 1
            if self._watchers == 0:
                await self.stop()

    async def latest(self) -> Any:
        """The latest answer (once the first read of this round is done)."""
        if self._first is not None:
            await self._first.wait()
        return self._latest

    async def available(self) -> Any | Pending:
        """The latest answer at once: :data:`NOT_YET` while the first read of this round is
        under way (the feed then sends it on a later tick)."""
        if self._first is not None and not self._first.is_set():
            return NOT_YET
        return self._latest

    async def stop(self) -> None:
        task, self._task, self._first = self._task, None, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _poll(self, first: asyncio.Event) -> None:
        while True:
            try:
                self.reads += 1
                self._latest = await self._read()
            except Exception:
                logger.exception("reading the dashboard's source failed; trying again")
            finally:
                first.set()
            await self._sleeper(self._interval)
