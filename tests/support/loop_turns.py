"""Stamps of an event loop's turns while a coroutine runs: a gap says the loop was held."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

#: How often the ticker asks for a turn: a 0.3 s hold of the loop costs it about 30 stamps.
TICK_S = 0.01


@contextlib.asynccontextmanager
async def loop_turns() -> AsyncIterator[list[float]]:
    """Yield the list of monotonic stamps a ticker task adds, one per turn it gets."""
    turns: list[float] = []

    async def tick() -> None:
        while True:
            turns.append(time.monotonic())
            await asyncio.sleep(TICK_S)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)  # the first stamp, before the body runs
    try:
        yield turns
    finally:
        ticker.cancel()
