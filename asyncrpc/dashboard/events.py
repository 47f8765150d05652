"""The page's live feed: server-sent events, one named event per source, sent when it changes.

Each :class:`Source` is read every ``interval`` seconds; its JSON is sent as
``event: <name>`` only when it differs from what this client got last, so an
idle system costs a few bytes (a comment line every ``keepalive`` seconds keeps
proxies and the browser from giving up on the stream). The browser's
EventSource reconnects by itself, and a new connection gets every source at once,
save one whose read answers :data:`NOT_YET`: the invocations, while the shared
poll's first read of the server is under way. The feed looks at such a source
again on the next tick and sends the others meanwhile, so the replicas' state
(a kill, a start) never waits behind a read of the server's history.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

#: Seconds between two looks at the sources that are due.
TICK = 0.1
KEEPALIVE = 15.0


class Pending(Enum):
    NOT_YET = "not yet"


#: What a source's read answers when it has nothing to send yet.
NOT_YET: Final = Pending.NOT_YET


@dataclass(frozen=True)
class Source:
    """One thing the page shows, read by ``read`` every ``interval`` seconds."""

    event: str
    read: Callable[[], Awaitable[Any]]
    interval: float


def frame(event: str, data: str) -> str:
    """One server-sent event (``data`` is one line of JSON)."""
    return f"event: {event}\ndata: {data}\n\n"


async def feed(
    sources: Sequence[Source],
    closed: Callable[[], Awaitable[bool]],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleeper: Callable[[float], Awaitable[None]] = asyncio.sleep,
    tick: float = TICK,
    keepalive: float = KEEPALIVE,
) -> AsyncIterator[str]:
    """Events for one client until ``closed()`` says it went away or the dashboard stops."""
    sent: dict[str, str] = {}
    due = dict.fromkeys((source.event for source in sources), 0.0)
    quiet_since = clock()
    yield "retry: 1000\n\n"
    while not await closed():
        now = clock()
        for source in sources:
            if now < due[source.event]:
                continue
            value = await source.read()
            if value is NOT_YET:
                continue
            due[source.event] = now + source.interval
            data = json.dumps(value, separators=(",", ":"), default=str)
            if sent.get(source.event) != data:
                sent[source.event] = data
                quiet_since = now
                yield frame(source.event, data)
        if now - quiet_since >= keepalive:
            quiet_since = now
            yield ": keepalive\n\n"
        await sleeper(tick)
