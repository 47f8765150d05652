"""The poll stream stays connected for the life of the process, whatever ends a stream, and
hands each message over in the turn of the event loop that reads it."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from asyncrpc.network.join import PollStream
from harness.isolation import free_port

SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
MESSAGE = b'data: {"kind": "noop"}\n\n'


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class StreamServer:
    """Answers every GET with ``answer``, then holds the connection (or ends it: ``end``)."""

    def __init__(self, answer: bytes, end: bool = False) -> None:
        self.streams = 0
        self.requests: list[bytes] = []
        self._answer = answer
        self._end = end
        self._writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests.append(await reader.readuntil(b"\r\n\r\n"))
        self.streams += 1
        self._writers.append(writer)
        writer.write(self._answer)
        await writer.drain()
        if self._end:
            writer.close()
            return
        await reader.read()  # hold the stream open until the client goes

    def close(self) -> None:
        for writer in self._writers:
            writer.close()


async def run_stream(
    server: StreamServer,
    wanted: int,
    within: float,
    auth: str | None = None,
    host: str = "127.0.0.1",
    listening_on: list[int] | None = None,
) -> tuple[int, list[str], bool]:
    """Streams opened (up to ``wanted``, within ``within`` s), messages got, connected or not.

    The stream's URL names ``host``; the port the server listens on is added to
    ``listening_on``, for a loop whose name lookup the test controls.
    """
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    if listening_on is not None:
        listening_on.append(port)
    messages: list[str] = []
    stream = PollStream(f"http://{host}:{port}", pid="p-1", group="g", auth=auth)
    stream.recv(messages.append)
    await stream.start()
    try:
        deadline = asyncio.get_running_loop().time() + within
        while server.streams < wanted and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        return server.streams, messages, stream.connected.is_set()
    finally:
        await stream.stop()
        server.close()
        listening.close()
        await listening.wait_closed()


def test_a_stream_the_server_ends_is_opened_again() -> None:
    server = StreamServer(SSE_HEAD + chunk(MESSAGE) + b"0\r\n\r\n", end=True)
    streams, messages, _ = asyncio.run(run_stream(server, wanted=2, within=5.0))
    assert streams >= 2
    assert messages[:2] == ['{"kind": "noop"}'] * 2


def test_a_refused_or_unreadable_stream_is_opened_again() -> None:
    for answer in (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
        b"nonsense\r\n\r\n",
    ):
        streams, messages, connected = asyncio.run(
            run_stream(StreamServer(answer), wanted=2, within=5.0)
        )
        assert streams >= 2
        assert messages == []
        assert not connected


def test_a_quiet_stream_stays_the_one_stream() -> None:
    """No time limit once open: a stream that sends nothing for a while is kept."""
    server = StreamServer(SSE_HEAD + chunk(MESSAGE))
    streams, messages, connected = asyncio.run(run_stream(server, wanted=2, within=1.5, auth="t0k"))
    assert (streams, messages, connected) == (1, ['{"kind": "noop"}'], True)
    assert b"GET /poll/g/p-1 HTTP/1.1\r\n" in server.requests[0]
    assert b"Authorization: Bearer t0k\r\n" in server.requests[0]


def test_a_pushed_messages_task_starts_in_the_turn_that_reads_it() -> None:
    """A message is handed to the SDK in the read's own callback (no task woken for it), and
    the task the SDK creates for an ``execute`` starts there: its first request leaves in the
    turn of the event loop that read the message."""

    async def main() -> tuple[list[list[str]], object, set[object]]:
        started: list[str] = []
        when_handed: list[list[str]] = []
        handed_in: set[object] = set()

        async def work(data: str) -> None:
            started.append(data)

        def on_message(data: str) -> None:
            asyncio.get_running_loop().create_task(work(data))  # as the SDK's dispatch does
            when_handed.append(list(started))
            handed_in.add(asyncio.current_task())  # None: in the read's callback, not a task

        reads: list[bytes] = []
        server = StreamServer(SSE_HEAD + chunk(b"data: m1\n\ndata: m") + chunk(b"2\n\n"))
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        stream = PollStream(f"http://127.0.0.1:{port}", pid="p-1", group="g")
        stream.recv(on_message)
        stream.recv(lambda data: reads.append(data.encode()))
        await stream.start()
        try:
            async with asyncio.timeout(5):
                while len(reads) < 2:
                    await asyncio.sleep(0.01)
        finally:
            await stream.stop()
            server.close()
            listening.close()
            await listening.wait_closed()
        return when_handed, asyncio.get_running_loop().get_task_factory(), handed_in

    when_handed, factory, handed_in = asyncio.run(main())
    assert when_handed == [["m1"], ["m1", "m2"]]
    assert factory is None
    assert handed_in == {None}


def test_each_of_the_hosts_addresses_is_tried_in_turn() -> None:
    """A name whose first address refuses (say ``localhost`` as ::1 while the server listens
    on 127.0.0.1) is reached at the next one."""
    refusing = free_port()

    async def main(loop_port: list[int]) -> tuple[int, list[str], bool]:
        server = StreamServer(SSE_HEAD + chunk(MESSAGE))
        return await run_stream(server, 1, 5, host="server.test", listening_on=loop_port)

    ports: list[int] = []

    class TwoAddresses(asyncio.SelectorEventLoop):
        async def getaddrinfo(self, *args: Any, **kwargs: Any) -> list[Any]:
            kind = socket.SOCK_STREAM
            return [
                (socket.AF_INET, kind, 6, "", ("127.0.0.1", refusing)),
                (socket.AF_INET, kind, 6, "", ("127.0.0.1", ports[0])),
            ]

    with asyncio.Runner(loop_factory=TwoAddresses) as runner:
        assert runner.run(main(ports)) == (1, ['{"kind": "noop"}'], True)
