"""The gateway's connection to the server: a Resonate process in group ``gateway``.

Its Resonate client starts invocations (a start's own requests go out through
its :class:`StartChannel`, together where the channel pipelines) and hears, on
its poll stream, that one it waits on has finished; its :class:`AsyncServerReader` reads
invocations for ``GET /invocations/...``. Both give up on an unreachable
server after ``request_timeout`` seconds, so a caller gets an answer. Its
``health`` is its message source's: whether the stream (or, on resonate-pg,
the drain of its messages) reaches the server now, and why not.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from resonate.resonate import Resonate

from asyncrpc.gateway import invocations
from asyncrpc.gateway.settings import GatewaySettings
from asyncrpc.lesson import topology
from asyncrpc.network.bounded import BoundedNetwork
from asyncrpc.network.health import LinkHealth
from asyncrpc.network.join import Links, join, links
from asyncrpc.network.start_channel import StartChannel
from asyncrpc.readers.server_reader import AsyncServerReader
from asyncrpc.runtime import config

#: Seconds a gateway re-checks, by polling, invocations it waits on (in case
#: the poll stream dropped a notification, e.g. while the server restarted).
REFRESH_SECONDS = 5.0
#: How long to wait for a clean SDK shutdown when the gateway stops.
STOP_TIMEOUT = 5.0


def request_ids() -> Callable[[], str]:
    """Ids for the gateway's starts: unique to this process (a random prefix) and cheap to make.

    A start tags its create with one to tell "created" from "re-attached"; a
    counter behind a random prefix is as unique for that as a fresh uuid4, at
    a fraction of its cost on the hot path.
    """
    prefix = secrets.token_hex(8)
    counter = itertools.count()
    return lambda: f"{prefix}-{next(counter)}"


@dataclass
class GatewayClient:
    """The gateway's Resonate client, the channel its starts go through, its reader, its link's
    health.

    ``request_id`` names each start (see :func:`asyncrpc.gateway.invocations.start`);
    ``timers`` says who fires the server's timers, where the gateway knows (resonate-pg).
    """

    resonate: Resonate
    channel: StartChannel
    reader: AsyncServerReader
    health: Callable[[], LinkHealth]
    request_id: Callable[[], str] = field(default_factory=request_ids)
    timers: Callable[[], str | None] = lambda: None
    _callers: dict[str, Resonate] = field(default_factory=dict, init=False, repr=False)

    def caller(self, group: str) -> Resonate:
        """The client's handle for starting invocations in ``group``, made once per group.

        The SDK's ``options`` handles share the client's engine and keep no state of a
        call, so every start in a group can use the one handle.
        """
        caller = self._callers.get(group)
        if caller is None:
            caller = invocations.group_caller(self.resonate, group)
            self._callers[group] = caller
        return caller

    async def close(self) -> None:
        await self.reader.aclose()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.resonate.stop(), STOP_TIMEOUT)


ClientFactory = Callable[[GatewaySettings], GatewayClient]


def connect(settings: GatewaySettings, make_links: Links = links) -> GatewayClient:
    """Join the server as ``gateway``; requests give up on an unreachable server.

    ``make_links`` makes the request channel and message source (a benchmark's tracer
    times them through it).
    """
    channel, source = make_links(
        settings.server_url,
        group=topology.GATEWAY_GROUP,
        pid=settings.gateway_id,
        token=settings.token,
    )
    # An HTTP request stops as soon as it is cancelled; a Postgres query may take seconds.
    prompt = not config.is_postgres_url(settings.server_url)
    redacted = config.redacted(settings.server_url)
    inner = BoundedNetwork(channel, redacted, settings.request_timeout, unwinds_at_once=prompt)
    # Where the channel pipelines (HTTP), a start's listen goes out with its create.
    network = StartChannel(
        inner,
        unwinds_at_once=prompt,
        pipelines=inner.pipelines,
        inner_timeout=settings.request_timeout,
    )
    resonate, stream = join(
        settings.server_url,
        group=topology.GATEWAY_GROUP,
        pid=settings.gateway_id,
        token=settings.token,
        connection=(network, source),
        subscription_refresh_secs=REFRESH_SECONDS,
    )
    reader = AsyncServerReader(
        settings.server_url, settings.token, timeout=settings.request_timeout
    )
    return GatewayClient(resonate, network, reader, stream.health, timers=lambda: stream.timers)
