"""The poll stream stays connected for the life of the process, whatever ends a stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

import aiohttp

from asyncrpc.network.join import STREAM_TIMEOUT, PollStream

SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
MESSAGE = b'data: {"kind": "noop"}\n\n'


class QuietServer:
    """Answers every GET with an SSE stream that sends one message, then nothing."""

    def __init__(self) -> None:
        self.streams = 0
        self.opened = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.streams += 1
        self._writers.append(writer)
        writer.write(SSE_HEAD + f"{len(MESSAGE):x}\r\n".encode() + MESSAGE + b"\r\n")
        await writer.drain()
        self.opened.set()
        await reader.read()  # hold the stream open until the client goes

    def close(self) -> None:
        for writer in self._writers:
            writer.close()


async def streams_opened(timeout: aiohttp.ClientTimeout, wanted: int, within: float) -> int:
    quiet = QuietServer()
    server = await asyncio.start_server(quiet.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    messages: list[str] = []
    stream = PollStream(f"http://127.0.0.1:{port}", pid="p-1", group="g", timeout=timeout)
    stream.recv(messages.append)
    await stream.start()
    try:
        deadline = asyncio.get_running_loop().time() + within
        while quiet.streams < wanted and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert messages, "the stream delivered nothing"
        assert stream.connected.is_set() or quiet.streams < wanted
        return quiet.streams
    finally:
        await stream.stop()
        quiet.close()
        server.close()
        await server.wait_closed()


def test_a_stream_that_times_out_is_opened_again() -> None:
    """aiohttp raises a plain TimeoutError when a request outlives its total time limit: the
    SDK's own loop ends on it, the node's loop opens the stream again."""
    short = aiohttp.ClientTimeout(total=0.3)
    assert asyncio.run(streams_opened(short, wanted=3, within=10.0)) >= 3


def test_the_stream_has_no_total_time_limit() -> None:
    """With the stream's own timeout a quiet stream stays the one stream."""
    assert STREAM_TIMEOUT.total is None
    assert asyncio.run(streams_opened(STREAM_TIMEOUT, wanted=2, within=1.5)) == 1


class _Content:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


def test_a_pushed_messages_task_starts_in_the_turn_that_reads_it() -> None:
    """The SDK hands an ``execute`` to a task it creates: that task's first request leaves in
    the turn of the event loop that read the message, not on the next turn."""

    async def main() -> list[list[str]]:
        stream = PollStream("http://127.0.0.1:9", pid="p-1", group="g")
        started: list[str] = []
        when_handed: list[list[str]] = []

        async def work(data: str) -> None:
            started.append(data)

        def on_message(data: str) -> None:
            asyncio.get_running_loop().create_task(work(data))  # as the SDK's dispatch does
            when_handed.append(list(started))

        stream.recv(on_message)
        response = SimpleNamespace(content=_Content([b"data: m1\n\ndata: m", b"2\n\n"]))
        await stream._read_stream(response)  # type: ignore[arg-type]
        assert asyncio.get_running_loop().get_task_factory() is None
        return when_handed

    assert asyncio.run(main()) == [["m1"], ["m1", "m2"]]
