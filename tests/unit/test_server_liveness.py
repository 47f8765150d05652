"""A stream whose process stops reading is noticed, and its work goes to another member."""

from __future__ import annotations

from asyncrpc.server.engine import Engine
from asyncrpc.server.router import ACK_TIMEOUT_MS, Stream
from asyncrpc.server.store import Store
from tests.support.server import FAR, Clock, send


def executes(stream: Stream) -> list[tuple[str, int] | None]:
    return [stream.queue.get_nowait().task for _ in range(stream.queue.qsize())]


def test_an_execute_left_unacquired_by_a_silent_process_goes_to_another_member() -> None:
    clock = Clock()
    engine = Engine(Store(":memory:"), clock=clock)
    stopped = engine.router.connect("g", "c-1")
    live = engine.router.connect("g", "c-2")
    tags = {"resonate:target": "poll://any@g"}
    for i in range(2):  # round robin: one execute to each member
        send(engine, "promise.create", id=f"t{i}", timeoutAt=FAR, tags=tags)
    (sent_to_stopped,) = executes(stopped)
    (sent_to_live,) = executes(live)
    acquired = send(engine, "task.acquire", id=sent_to_live[0], version=0, pid="c-2", ttl=5000)
    assert acquired["head"]["status"] == 200
    clock.now += ACK_TIMEOUT_MS - 1
    engine.tick()
    assert not stopped.unresponsive.is_set()
    clock.now += 1
    engine.tick()
    assert stopped.unresponsive.is_set() and not live.unresponsive.is_set()
    assert [s.pid for s in engine.router.streams()] == ["c-2"]
    assert executes(live) == [sent_to_stopped], "the stopped member's work was not re-routed"
    # New work goes only to the live member.
    send(engine, "promise.create", id="t9", timeoutAt=FAR, tags=tags)
    assert executes(live) == [("t9", 0)]


def test_a_busy_process_that_still_sends_requests_keeps_its_stream() -> None:
    clock = Clock()
    engine = Engine(Store(":memory:"), clock=clock)
    busy = engine.router.connect("g", "c-1")
    send(
        engine,
        "promise.create",
        id="waiting",
        timeoutAt=FAR,
        tags={"resonate:target": "poll://any@g"},
    )
    clock.now += ACK_TIMEOUT_MS // 2
    send(engine, "task.heartbeat", pid="c-1", tasks=[])  # running other tasks, renewing leases
    clock.now += ACK_TIMEOUT_MS
    engine.tick()
    assert not busy.unresponsive.is_set()
    assert [s.pid for s in engine.router.streams()] == ["c-1"]
