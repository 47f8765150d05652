"""The flows' functions in one process for fast unit tests, and a server reader for them.

:func:`in_process` (from :mod:`harness.in_process`) runs every function on the
SDK's in-process server; :func:`watched_in_process` sends its requests through
a :class:`StartChannel`, as the gateway's are; :func:`local_reader` reads that server.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from resonate.connections import LocalConnection
from resonate.resonate import Resonate
from resonate_base.connections import Network

from asyncrpc.network.start_channel import StartChannel
from asyncrpc.readers.server_reader import AsyncServerReader
from harness.in_process import in_process

__all__ = ["LocalTransport", "in_process", "local_reader", "watched_in_process"]


def watched_in_process(
    delay: float = 0.0, around: Callable[[Network], Network] = lambda requests: requests
) -> tuple[Resonate, StartChannel, LocalConnection]:
    """:func:`in_process`, its requests through a :class:`StartChannel` around ``around``
    (one request at a time: the in-process server pipelines nothing)."""
    watches: list[StartChannel] = []

    def watched(requests: Network) -> Network:
        watches.append(StartChannel(around(requests)))
        return watches[-1]

    resonate, server = in_process(delay, requests=watched)
    return resonate, watches[0], server


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
