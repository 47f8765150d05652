"""The flows' functions in one process on the SDK's in-process server, for fast unit tests."""

from __future__ import annotations

import httpx
from resonate.connections import LocalConnection
from resonate.resonate import Resonate
from resonate.retry import Never

from asyncrpc import services
from asyncrpc.invocations.server_reader import AsyncServerReader
from asyncrpc.node import with_pause


def in_process(delay: float = 0.0) -> tuple[Resonate, LocalConnection]:
    """One process that registers every function; the local server routes all work to it.

    Needs a running event loop. ``delay`` is the crash-demo pause every function takes.
    """
    server = LocalConnection(tick_interval=0.05)
    resonate = Resonate(network=server, retry_policy=Never(), env={}, subscription_refresh_secs=0)
    for name, function in services.FUNCTIONS.items():
        resonate.register(with_pause(function, delay), name=name)
    return resonate, server


class LocalTransport(httpx.AsyncBaseTransport):
    """HTTP requests to the server, answered by the SDK's in-process server (for a reader)."""

    def __init__(self, server: LocalConnection) -> None:
        self.server = server

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = await self.server.send((await request.aread()).decode())
        return httpx.Response(200, content=answer.encode())


def local_reader(server: LocalConnection) -> AsyncServerReader:
    """A server reader whose requests the in-process server answers."""
    return AsyncServerReader("http://in-process", transport=LocalTransport(server))
