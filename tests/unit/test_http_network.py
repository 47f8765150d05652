"""The lean HTTP client the nodes and the gateway send protocol requests with.

Against a scripted loopback server (so a test decides when a connection is
closed or an answer is late); the end-to-end tests run it against the real
server. The contract is the SDK's HttpConnection's: any status is returned,
an unreachable server is retried with backoff while running, and a stopped
network raises ConnectorError.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from resonate.connections import HttpConnection
from resonate.error import ConnectorError
from resonate.retry import ExponentialBackoff

from asyncrpc.network.lean_http import LeanHttpNetwork, server_network
from harness.isolation import free_port


def in_loop(test: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    """Run an async test body on a fresh event loop."""

    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())

    return run


@dataclass
class Seen:
    connection: int
    head: str
    body: bytes


#: What the server does with a request: bytes to write, or None to close without answering.
Script = Callable[[Seen], Awaitable[bytes | None]]


def answer(body: bytes, status: str = "200 OK") -> bytes:
    return b"HTTP/1.1 %s\r\ncontent-length: %d\r\n\r\n%s" % (status.encode(), len(body), body)


async def echo(seen: Seen) -> bytes:
    return answer(seen.body)


@dataclass
class ScriptedServer:
    script: Script = echo
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    _server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                length = next(
                    int(line.split(":", 1)[1])
                    for line in head.split("\r\n")
                    if line.lower().startswith("content-length:")
                )
                seen = Seen(number, head, await reader.readexactly(length))
                self.seen.append(seen)
                reply = await self.script(seen)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def serving(script: Script = echo):
    server = await ScriptedServer(script).start()
    try:
        yield server
    finally:
        await server.close()


class RecordingSleeper:
    """The backoff's sleeper: records each delay, sleeps not at all, can run a hook."""

    def __init__(self, hook: Callable[[int], Awaitable[None]] | None = None) -> None:
        self.delays: list[float] = []
        self.hook = hook

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.hook is not None:
            await self.hook(len(self.delays))
        await asyncio.sleep(0)


async def started(network: LeanHttpNetwork) -> LeanHttpNetwork:
    await network.start()
    return network


@in_loop
async def test_sends_envelopes_on_one_kept_alive_connection() -> None:
    async with serving() as server:
        network = await started(LeanHttpNetwork(server.url + "/api/", auth="s3cret"))
        try:
            replies = [
                await network.send(f'{{"n": {n}}}', {"resonate:origin": "flow-1"}) for n in range(3)
            ]
        finally:
            await network.stop()
    assert replies == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    assert server.connections == 1
    head = server.seen[0].head
    assert head.startswith("POST /api/ HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n" in head
    assert "Authorization: Bearer s3cret\r\n" in head
    assert "Content-Type: application/json\r\n" in head
    assert "resonate:origin: flow-1\r\n" in head


@in_loop
async def test_any_status_comes_back_as_the_body_also_chunked() -> None:
    async def not_found(seen: Seen) -> bytes:
        return (
            b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n"
            b'5\r\n{"a":\r\n3\r\n 1}\r\n0\r\n\r\n'
        )

    async with serving(not_found) as server:
        network = await started(LeanHttpNetwork(server.url))
        try:
            assert await network.send("{}") == '{"a": 1}'
            assert await network.send("{}") == '{"a": 1}'
        finally:
            await network.stop()
    assert server.connections == 1


@in_loop
async def test_a_kept_alive_connection_the_server_dropped_is_retried_at_once() -> None:
    async def drop_second(seen: Seen) -> bytes | None:
        if seen.connection == 1 and len(server.seen) == 2:
            return None  # read the request, close without answering (a restart)
        return answer(seen.body)

    sleeper = RecordingSleeper()
    async with serving(drop_second) as server:
        network = await started(LeanHttpNetwork(server.url, sleeper=sleeper))
        try:
            assert await network.send("first") == "first"
            assert await network.send("second") == "second"
        finally:
            await network.stop()
    assert server.connections == 2
    assert sleeper.delays == []


@in_loop
async def test_an_unreachable_server_is_retried_with_backoff_until_it_answers() -> None:
    port = free_port()
    server = ScriptedServer()

    async def come_up_on_third_try(tries: int) -> None:
        if tries == 3:
            await server.start(port)

    sleeper = RecordingSleeper(come_up_on_third_try)
    backoff = ExponentialBackoff(initial=0.5, factor=2.0, max_delay=2.0)
    network = await started(
        LeanHttpNetwork(f"http://127.0.0.1:{port}", backoff=backoff, sleeper=sleeper)
    )
    try:
        assert await asyncio.wait_for(network.send("hello"), 10) == "hello"
    finally:
        await network.stop()
        await server.close()
    assert len(sleeper.delays) == 3
    assert sleeper.delays == sorted(sleeper.delays)


@in_loop
async def test_stop_ends_a_send_waiting_in_its_backoff() -> None:
    backing_off = asyncio.Event()

    async def nap(seconds: float) -> None:
        backing_off.set()
        await asyncio.sleep(30)

    network = await started(LeanHttpNetwork(f"http://127.0.0.1:{free_port()}", sleeper=nap))
    sending = asyncio.ensure_future(network.send("{}"))
    await asyncio.wait_for(backing_off.wait(), 5)
    await network.stop()
    with pytest.raises(ConnectorError):
        await asyncio.wait_for(sending, 5)
    with pytest.raises(ConnectorError):
        await network.send("{}")


@in_loop
async def test_a_network_not_started_fails_at_once() -> None:
    network = LeanHttpNetwork(f"http://127.0.0.1:{free_port()}", sleeper=RecordingSleeper())
    with pytest.raises(ConnectorError):
        await network.send("{}")


@in_loop
async def test_a_cancelled_request_never_hands_its_late_answer_to_the_next() -> None:
    async def slow_first(seen: Seen) -> bytes:
        if seen.body == b"slow":
            await asyncio.sleep(0.5)
        return answer(seen.body)

    async with serving(slow_first) as server:
        network = await started(LeanHttpNetwork(server.url))
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(network.send("slow"), 0.1)
            assert await network.send("next") == "next"
        finally:
            await network.stop()
    assert server.connections == 2


@in_loop
async def test_a_line_break_in_a_header_is_refused() -> None:
    network = await started(LeanHttpNetwork("http://127.0.0.1:1"))
    with pytest.raises(ConnectorError, match="line break"):
        await network.send("{}", {"resonate:origin": "a\r\nX-Injected: 1"})
    await network.stop()


def test_only_http_urls_get_the_lean_client() -> None:
    assert isinstance(server_network("http://127.0.0.1:8001"), LeanHttpNetwork)
    assert isinstance(server_network("https://resonate.example:8001"), HttpConnection)
    with pytest.raises(ValueError, match="http://host:port"):
        LeanHttpNetwork("https://resonate.example")


async def never_answer(seen: Seen) -> bytes:
    await asyncio.sleep(60)
    return answer(seen.body)


@in_loop
async def test_an_answer_that_never_comes_is_retried_then_a_connector_error_after_stop() -> None:
    retried = asyncio.Event()

    async def second_try(tries: int) -> None:
        retried.set()

    async with serving(never_answer) as server:
        network = await started(
            LeanHttpNetwork(server.url, sleeper=RecordingSleeper(second_try), read_timeout=0.2)
        )
        sending = asyncio.ensure_future(network.send("{}"))
        await asyncio.wait_for(retried.wait(), 5)
        await network.stop()
        with pytest.raises(ConnectorError, match=r"no answer within 0\.2s"):
            await asyncio.wait_for(sending, 5)
    assert server.connections >= 1


@in_loop
async def test_a_request_of_a_network_not_started_times_out_as_a_connector_error() -> None:
    async with serving(never_answer) as server:
        network = LeanHttpNetwork(server.url, read_timeout=0.2)
        with pytest.raises(ConnectorError, match="no answer"):
            await asyncio.wait_for(network.send("{}"), 5)


@in_loop
async def test_a_connection_that_is_never_accepted_times_out() -> None:
    # A listening socket whose backlog is full accepts no more connections.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        network = LeanHttpNetwork(f"http://127.0.0.1:{port}", connect_timeout=0.2, read_timeout=0.2)
        try:
            with pytest.raises(ConnectorError, match=r"within 0\.2s"):
                await asyncio.wait_for(network.send("{}"), 5)
        finally:
            for filler in fillers:
                filler.close()


@in_loop
async def test_a_request_on_a_kept_alive_connection_times_out_at_its_own_deadline() -> None:
    # The first request arms the connection's timer for its own deadline; the second,
    # sent later on the same connection, must still get all of its read_timeout.
    async def first_only(seen: Seen) -> bytes:
        if len(server.seen) == 1:
            return answer(seen.body)
        await asyncio.sleep(60)
        return answer(seen.body)

    async with serving(first_only) as server:
        network = LeanHttpNetwork(server.url, read_timeout=0.4)
        assert await network.send('{"n": 1}') == '{"n": 1}'
        await asyncio.sleep(0.3)
        loop = asyncio.get_running_loop()
        sent = loop.time()
        with pytest.raises(ConnectorError, match=r"no answer within 0\.4s"):
            await asyncio.wait_for(network.send('{"n": 2}'), 5)
        assert loop.time() - sent >= 0.39
    assert server.connections == 1
