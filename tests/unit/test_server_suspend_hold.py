"""A suspend whose awaited promises are all pending waits, behind the fast lane, for one to settle.

Answered 300 once it settles (the task goes on where it is: no resume, no second
acquire), or suspended at the end of its wait as if it had come then.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from asyncrpc.server.app import ServerApp
from asyncrpc.server.engine import Engine, Reply
from asyncrpc.server.main import uvicorn_config
from asyncrpc.server.records import TaskState
from tests.support import http_wire
from tests.support.server import FAR, Clock, CountingStore, envelope, send

TARGET = "poll://any@workers"


def engine_with_a_child(hold_s: float) -> Engine:
    """Task ``root`` acquired (version 1) and its child ``root:1`` created, pending."""
    store = CountingStore(":memory:")
    store.delivered = []
    engine = Engine(store, clock=Clock(), beside_the_path_wait_s=0.001, suspend_hold_s=hold_s)
    send(engine, "promise.create", id="root", timeoutAt=FAR, tags={"resonate:target": TARGET})
    assert (
        send(engine, "task.acquire", id="root", version=0, pid="w1", ttl=5000)["head"]["status"]
        == 200
    )
    fenced = send(
        engine,
        "task.fence",
        id="root",
        version=1,
        action={
            "kind": "promise.create",
            "head": {},
            "data": {"id": "root:1", "timeoutAt": FAR, "tags": {"resonate:target": TARGET}},
        },
    )
    assert fenced["head"]["status"] in (200, 201), fenced
    store.delivered = []
    return engine


SUSPEND = envelope(
    "task.suspend",
    id="root",
    version=1,
    actions=[{"kind": "promise.register_callback", "data": {"awaited": "root:1"}}],
)
SETTLE = envelope("promise.settle", id="root:1", state="resolved", value={"data": "1"})


def run(engine: Engine, steps: list[tuple[bytes, bool, float]]) -> list[tuple[str, Any]]:
    """Hand each (body, behind) to :meth:`Engine.answer`, waiting the given seconds after it;
    what was delivered, in order (commits included): (kind status, the answer's data)."""
    assert isinstance(engine.store, CountingStore)
    delivered: list[tuple[str, Any]] = []
    store_notes = engine.store.delivered = []

    def deliver(reply: Reply) -> None:
        store_notes.append(f"{reply.kind} {reply.status}")
        delivered.append((f"{reply.kind} {reply.status}", json.loads(reply.body).get("data")))

    async def go() -> None:
        for body, behind, wait in steps:
            engine.answer(body, deliver, behind)
            for _ in range(5):
                await asyncio.sleep(0)
            await asyncio.sleep(wait)

    asyncio.run(go())
    # The commits, noted by the store, in their place among the answers.
    notes = iter(delivered)
    merged: list[tuple[str, Any]] = []
    for note in store_notes:
        merged.append(next(notes) if not note.startswith("commit") else (note, None))
    return merged


def test_a_suspend_answered_300_once_its_child_settles_and_the_task_goes_on() -> None:
    engine = engine_with_a_child(hold_s=30.0)
    delivered = run(engine, [(SUSPEND, False, 0.01), (SETTLE, False, 0.01)])
    kinds = [kind for kind, _ in delivered]
    # The settle's commit, then the suspend (ahead of the settle's own answer); the suspend
    # changes nothing, so it is never logged.
    assert kinds == ["commit 1", "task.suspend 300", "promise.settle 200"], kinds
    preload = delivered[1][1]["preload"]
    assert [p["id"] for p in preload] == ["root:1"]
    task = engine.state.tasks["root"]
    assert task.state is TaskState.ACQUIRED and task.version == 1
    assert engine.router.queued == 0 and not engine._holds and not engine._holding


def test_a_suspend_whose_child_stays_pending_is_suspended_after_its_wait() -> None:
    engine = engine_with_a_child(hold_s=0.02)
    delivered = run(engine, [(SUSPEND, False, 0.05)])
    assert [kind for kind, _ in delivered] == ["commit 1", "task.suspend 200"]
    assert engine.state.tasks["root"].state is TaskState.SUSPENDED
    # Settling the child now resumes the task as usual.
    assert [kind for kind, _ in run(engine, [(SETTLE, False, 0.01)])] == [
        "commit 1",
        "promise.settle 200",
    ]
    assert engine.state.tasks["root"].state is TaskState.PENDING


def test_without_a_wait_a_suspend_is_applied_at_once() -> None:
    engine = engine_with_a_child(hold_s=0.0)
    delivered = run(engine, [(SUSPEND, False, 0.01), (SETTLE, False, 0.01)])
    assert [kind for kind, _ in delivered] == [
        "commit 1",
        "task.suspend 200",
        "commit 1",
        "promise.settle 200",
    ]


def test_a_suspend_of_a_settled_child_does_not_wait() -> None:
    engine = engine_with_a_child(hold_s=30.0)
    run(engine, [(SETTLE, False, 0.0)])
    delivered = run(engine, [(SUSPEND, False, 0.01)])
    assert [kind for kind, _ in delivered] == ["task.suspend 300"]


def test_a_request_behind_a_waiting_suspend_on_its_connection_keeps_its_place() -> None:
    engine = engine_with_a_child(hold_s=30.0)
    get = envelope("task.get", id="root")
    delivered = run(engine, [(SUSPEND, False, 0.0), (get, True, 0.01)])
    assert [kind for kind, _ in delivered] == ["commit 1", "task.suspend 200", "task.get 200"]
    assert delivered[2][1]["task"]["state"] == "suspended"


def test_stopping_drops_the_waiting_suspends() -> None:
    engine = engine_with_a_child(hold_s=30.0)

    async def go() -> list[Reply]:
        replies: list[Reply] = []
        engine.answer(SUSPEND, replies.append)
        await asyncio.sleep(0)
        await engine.stop()
        return replies

    assert asyncio.run(go()) == []
    assert not engine._holds and not engine._holding


def test_a_request_behind_on_another_connection_leaves_the_suspend_waiting() -> None:
    """A gateway's pipelined create and listen do not end other connections' waits."""
    engine = engine_with_a_child(hold_s=30.0)
    ours, theirs = object(), object()
    delivered: list[str] = []

    def deliver(reply: Reply) -> None:
        delivered.append(f"{reply.kind} {reply.status}")

    async def go() -> None:
        engine.answer(SUSPEND, deliver, False, ours)
        engine.answer(envelope("task.get", id="root"), deliver, True, theirs)
        for _ in range(5):
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        assert delivered == ["task.get 200"]
        engine.answer(envelope("task.get", id="root"), deliver, True, ours)
        for _ in range(5):
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)

    asyncio.run(go())
    assert delivered == ["task.get 200", "task.suspend 200", "task.get 200"]


def test_a_waiting_suspend_whose_connection_is_gone_suspends_its_task() -> None:
    """Its process died: the task must resume elsewhere once its child settles, not wait
    for the dead process's lease to end."""
    engine = engine_with_a_child(hold_s=30.0)
    connection = object()

    async def go() -> None:
        engine.answer(SUSPEND, lambda reply: None, False, connection)
        await asyncio.sleep(0.01)
        assert engine.state.tasks["root"].state is TaskState.ACQUIRED
        engine.closed(connection)
        await asyncio.sleep(0.01)

    asyncio.run(go())
    assert engine.state.tasks["root"].state is TaskState.SUSPENDED
    run(engine, [(SETTLE, False, 0.01)])
    assert engine.state.tasks["root"].state is TaskState.PENDING


def test_the_fast_lane_tells_the_engine_of_a_connection_gone_with_a_waiting_suspend() -> None:
    engine = engine_with_a_child(hold_s=30.0)
    app = ServerApp(engine, None)

    async def go() -> TaskState:
        port, server, task = await http_wire.serve(uvicorn_config(app, app))
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            head = f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            head += f"Content-Type: application/json\r\nContent-Length: {len(SUSPEND)}\r\n\r\n"
            writer.write(head.encode() + SUSPEND)
            await writer.drain()
            for _ in range(100):
                if engine._holds:
                    break
                await asyncio.sleep(0.01)
            assert engine.state.tasks["root"].state is TaskState.ACQUIRED
            writer.close()
            for _ in range(100):
                if engine.state.tasks["root"].state is TaskState.SUSPENDED:
                    break
                await asyncio.sleep(0.01)
            return engine.state.tasks["root"].state
        finally:
            server.should_exit = True
            await task

    assert asyncio.run(go()) is TaskState.SUSPENDED


def test_a_listen_waits_for_its_promise_and_is_answered_with_it_settled() -> None:
    """The gateway's listen, pipelined behind its create: answered with the result, and no
    listener is registered, so no unblock is pushed."""
    store = CountingStore(":memory:")
    store.delivered = []
    engine = Engine(store, clock=Clock(), suspend_hold_s=30.0)
    stream = engine.router.connect("gw", "gw-1")
    pushed: list[Any] = []
    stream.writer = lambda message: pushed.append(message) or True
    create = envelope("promise.create", id="p1", timeoutAt=FAR, tags={"resonate:target": TARGET})
    listen = envelope("promise.register_listener", awaited="p1", address="poll://uni@gw/gw-1")
    settle = envelope("promise.settle", id="p1", state="resolved", value={"data": "3"})
    connection = object()
    delivered: list[tuple[str, Any]] = []

    def deliver(reply: Reply) -> None:
        delivered.append((f"{reply.kind} {reply.status}", json.loads(reply.body).get("data")))

    async def go() -> None:
        engine.answer(create, deliver, False, connection)
        engine.answer(listen, deliver, True, connection)
        await asyncio.sleep(0.01)
        assert [kind for kind, _ in delivered] == ["promise.create 200"]
        engine.answer(settle, deliver)
        await asyncio.sleep(0.01)

    asyncio.run(go())
    assert [kind for kind, _ in delivered] == [
        "promise.create 200",
        "promise.register_listener 200",
        "promise.settle 200",
    ]
    assert delivered[1][1]["promise"]["state"] == "resolved"
    assert pushed == []
