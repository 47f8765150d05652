"""What the server does first after a commit: pushes at once, then the answers, then the rest."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from asyncrpc.server.app import ServerApp
from asyncrpc.server.engine import Engine, Reply
from asyncrpc.server.fast_lane import DirectPush
from asyncrpc.server.router import Message, Stream
from asyncrpc.server.store import Store
from tests.support.server import FAR, Clock, CountingStore, envelope, send

TAGS = {"resonate:target": "poll://any@g"}


class Writer:
    """A stream's writer that takes what it is given while ``open``."""

    def __init__(self) -> None:
        self.open = True
        self.written: list[str] = []

    def __call__(self, message: Message) -> bool:
        if not self.open:
            return False
        assert message.task is not None
        self.written.append(message.task[0])
        return True


def queued(stream: Stream) -> list[str]:
    return [stream.queue.get_nowait().task[0] for _ in range(stream.queue.qsize())]  # type: ignore[index]


def engine_with_stream() -> tuple[Engine, Stream, Writer]:
    engine = Engine(Store(":memory:"), clock=Clock())
    stream = engine.router.connect("g", "p-1")
    writer = stream.writer = Writer()
    return engine, stream, writer


def create(engine: Engine, promise_id: str) -> None:
    assert send(engine, "promise.create", id=promise_id, timeoutAt=FAR, tags=TAGS)["head"][
        "status"
    ] in (200, 201)


def test_a_writer_takes_the_messages_of_a_commit_at_once() -> None:
    engine, stream, writer = engine_with_stream()
    create(engine, "t1")
    create(engine, "t2")
    assert writer.written == ["t1", "t2"]
    assert queued(stream) == [] and engine.router.queued == 0
    # Written is sent: the recent messages are what a dying stream routes again.
    assert [m.task for _, m in stream.recent] == [("t1", 0), ("t2", 0)]


def test_what_the_writer_cannot_take_waits_in_the_queue_and_the_rest_waits_behind_it() -> None:
    engine, stream, writer = engine_with_stream()
    writer.open = False  # the peer does not read: its buffers are full
    create(engine, "t1")
    writer.open = True
    create(engine, "t2")  # behind t1, not ahead of it
    assert writer.written == []
    assert queued(stream) == ["t1", "t2"] and engine.router.queued == 2
    create(engine, "t3")  # the queue is empty again: at once
    assert writer.written == ["t3"]


def test_nothing_passes_the_messages_the_queue_writer_holds() -> None:
    engine, stream, writer = engine_with_stream()
    stream.pumping = True  # the queue's writer waits to write messages it took
    create(engine, "t1")
    assert writer.written == [] and queued(stream) == ["t1"]
    stream.pumping = False
    create(engine, "t2")
    assert writer.written == ["t2"]


def test_a_stream_without_a_writer_queues_everything() -> None:
    engine = Engine(Store(":memory:"), clock=Clock())
    stream = engine.router.connect("g", "p-1")
    create(engine, "t1")
    assert queued(stream) == ["t1"] and engine.router.queued == 1


def counting_engine(wait_s: float = 0.001) -> Engine:
    """An engine whose listens and suspends never wait for their promises to settle
    (``suspend_hold_s=0``, tests/unit/test_server_suspend_hold.py): only for the next commit."""
    store = CountingStore(":memory:")
    store.delivered = []
    return Engine(store, clock=Clock(), beside_the_path_wait_s=wait_s, suspend_hold_s=0.0)


def answered_in_one_turn(engine: Engine, requests: list[tuple[bytes, bool]]) -> list[str]:
    """Hand ``requests`` (body, behind) to :meth:`Engine.answer` in one turn of a loop; the
    replies (kind, status) in the order they were delivered, and the commits between them."""
    assert isinstance(engine.store, CountingStore)
    delivered = engine.store.delivered = []

    def deliver(reply: Reply) -> None:
        delivered.append(f"{reply.kind} {reply.status}")

    async def turn() -> None:
        for body, behind in requests:
            engine.answer(body, deliver, behind)
        for _ in range(10):
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)  # no commit came: the wait is over

    asyncio.run(turn())
    return delivered


LISTEN = envelope("promise.register_listener", awaited="p1", address="poll://uni@gw/gw-1")


def test_a_listen_in_the_turn_of_a_create_waits_for_the_creates_commit() -> None:
    engine = counting_engine()
    create(engine, "p1")
    create_p2 = envelope("promise.create", id="p2", timeoutAt=FAR, tags=TAGS)
    delivered = answered_in_one_turn(engine, [(LISTEN, False), (create_p2, False)])
    assert delivered == [
        "commit 1",
        "promise.create 200",
        "commit 1",
        "promise.register_listener 200",
    ]


def test_a_request_behind_a_waiting_one_on_its_connection_waits_too() -> None:
    engine = counting_engine()
    create(engine, "p1")
    get = envelope("promise.get", id="p1")
    delivered = answered_in_one_turn(engine, [(LISTEN, False), (get, True), (b"{nope", True)])
    assert delivered == [
        "commit 1",
        "promise.register_listener 200",
        "promise.get 200",
        "None 400",
    ]
    # Not behind one: at once.
    assert answered_in_one_turn(engine, [(LISTEN, False), (get, False)])[0] == "promise.get 200"


def test_an_answer_leaves_before_the_server_counts_it() -> None:
    app = ServerApp(Engine(Store(":memory:"), clock=Clock()))
    counted_when_answered: list[bytes] = []

    def respond(status: int, headers: list[tuple[bytes, bytes]], content: bytes) -> None:
        counted_when_answered.append(app.metrics.exposition())

    async def post() -> None:
        app.post([(b"host", b"127.0.0.1:8001")], envelope("promise.get", id="p0"), respond)
        for _ in range(3):
            await asyncio.sleep(0)

    asyncio.run(post())
    (before,) = counted_when_answered
    assert b'kind="promise.get"' not in before
    assert b'kind="promise.get"' in app.metrics.exposition()


def test_a_suspend_waits_for_the_request_that_comes_right_behind_it() -> None:
    """The next node's acquire comes a little after the suspend: it is still answered first."""
    engine = counting_engine(wait_s=60.0)
    create(engine, "p1")
    create_p2 = envelope("promise.create", id="p2", timeoutAt=FAR, tags=TAGS)
    assert isinstance(engine.store, CountingStore)
    delivered = engine.store.delivered = []

    def deliver(reply: Reply) -> None:
        delivered.append(f"{reply.kind} {reply.status}")

    async def two_turns() -> None:
        engine.answer(LISTEN, deliver)
        for _ in range(5):
            await asyncio.sleep(0)
        assert delivered == []
        engine.answer(create_p2, deliver)
        for _ in range(10):
            await asyncio.sleep(0)

    asyncio.run(two_turns())
    assert delivered == [
        "commit 1",
        "promise.create 200",
        "commit 1",
        "promise.register_listener 200",
    ]


def test_a_stopping_server_drops_what_waits_unapplied() -> None:
    engine = counting_engine(wait_s=0.05)
    create(engine, "p1")
    delivered: list[Reply] = []

    async def stop_while_waiting() -> None:
        engine.answer(LISTEN, delivered.append)
        await engine.stop()
        await asyncio.sleep(0.1)  # past the wait: nothing is applied to the closed store

    asyncio.run(stop_while_waiting())
    assert delivered == [] and engine.failed is None


def test_a_writer_that_fails_leaves_the_message_to_the_queue() -> None:
    engine, stream, _ = engine_with_stream()

    def broken(message: Message) -> bool:
        raise RuntimeError("the transport is closed")

    stream.writer = broken
    create(engine, "t1")
    assert queued(stream) == ["t1"]


class Transport:
    def __init__(self, closing: bool = False) -> None:
        self.closing = closing
        self.written: list[bytes] = []

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        self.written.append(data)


def cycle(transport: Transport, paused: bool = False, started: bool = True) -> Any:
    """What :class:`DirectPush` reads of uvicorn's request cycle."""
    return SimpleNamespace(
        disconnected=False,
        transport=transport,
        flow=SimpleNamespace(write_paused=paused),
        response_started=started,
        response_complete=False,
        chunked_encoding=True,
    )


def test_a_direct_push_writes_a_chunk_only_when_uvicorns_send_would_at_once() -> None:
    transport = Transport()
    assert DirectPush(cycle(transport)).write(b"data: x\n\n")
    assert transport.written == [b"9\r\ndata: x\n\n\r\n"]
    assert not DirectPush(cycle(transport, paused=True)).write(b"data: y\n\n")
    assert not DirectPush(cycle(transport, started=False)).write(b"data: y\n\n")
    assert not DirectPush(cycle(Transport(closing=True))).write(b"data: y\n\n")
    assert transport.written == [b"9\r\ndata: x\n\n\r\n"]
