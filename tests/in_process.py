"""The flows' functions in one process for fast unit tests, and a server reader for them.

:func:`in_process` (from :mod:`harness.in_process`) runs every function on the
SDK's in-process server; :func:`local_reader` reads that server.
"""

from __future__ import annotations

import httpx
from resonate.connections import LocalConnection

from asyncrpc.invocations.server_reader import AsyncServerReader
from harness.in_process import in_process

__all__ = ["LocalTransport", "in_process", "local_reader"]


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
