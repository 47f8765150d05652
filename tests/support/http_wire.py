"""Raw HTTP/1.1 on one connection: what a server answers to bytes sent as they are.

The fast lanes (the server's and the gateway's) are compared byte for byte with
uvicorn's own path, pipelined requests and early closes included, which an HTTP
client library would smooth over.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import httptools
import uvicorn

#: A server serving on loopback: its port, the server, and the task that runs it.
Served = tuple[int, uvicorn.Server, asyncio.Task[None]]


class Answers:
    """httptools callbacks: the answers read from one connection, ``ignored`` headers left out."""

    def __init__(self, ignored: Collection[str]) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[dict[str, Any]] = []
        self._ignored = ignored
        self._headers: dict[str, str] = {}
        self._body = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        headers = {k: v for k, v in self._headers.items() if k not in self._ignored}
        status = self.parser.get_status_code()
        self.done.append({"status": status, "headers": headers, "body": self._body})
        self._headers, self._body = {}, b""


async def exchange(
    port: int,
    data: bytes,
    answers: int,
    *,
    ignored: Collection[str],
    timeout: float = 10.0,
    close_wait: float = 0.2,
) -> tuple[list[dict[str, Any]], bool]:
    """Send ``data`` on a new connection; the answers, and whether the peer then closed it.

    ``close_wait``: how long to wait, after the last answer, for the peer to close.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    parsed = Answers(ignored)
    writer.write(data)
    closed = False
    try:
        async with asyncio.timeout(timeout):
            while len(parsed.done) < answers:
                chunk = await reader.read(65536)
                if not chunk:
                    closed = True
                    break
                parsed.parser.feed_data(chunk)
            if not closed:
                try:
                    closed = await asyncio.wait_for(reader.read(1), close_wait) == b""
                except TimeoutError:
                    closed = False
    finally:
        writer.close()
    return parsed.done, closed


async def serve(config: uvicorn.Config) -> Served:
    """Serve ``config`` in this event loop on a free loopback port: the port, server and task."""
    server = uvicorn.Server(config)
    sock = socket.create_server(("127.0.0.1", 0))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return sock.getsockname()[1], server, task


async def both_ways(
    serve_way: Callable[[bool], Awaitable[Served]],
    test: Callable[[dict[str, int]], Awaitable[None]],
) -> None:
    """Run ``test`` with the port of each way ("lane", "asgi"), then stop both servers.

    ``serve_way(lane)`` serves one: through the fast lane when ``lane``, else uvicorn's own path.
    """
    running = {name: await serve_way(name == "lane") for name in ("lane", "asgi")}
    try:
        await test({name: port for name, (port, _, _) in running.items()})
    finally:
        for _, server, task in running.values():
            server.should_exit = True
            await task
