"""An execute to a stream that asks for leases carries its task acquired for that process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from asyncrpc.server.app import MOST_LEASE_MS, MOST_ROOM, LeaseTerms, lease_terms
from asyncrpc.server.engine import Engine
from asyncrpc.server.records import TaskState
from asyncrpc.server.router import ACK_TIMEOUT_MS, Message, Stream
from asyncrpc.server.store import Store
from tests.support.server import FAR, Clock, send

TARGET = {"resonate:target": "poll://any@g"}
TTL = 5000


def messages(stream: Stream) -> list[Message]:
    return [stream.queue.get_nowait() for _ in range(stream.queue.qsize())]


def one_lease_out(clock: Clock) -> tuple[Engine, Stream]:
    """An engine that sent task ``t``, with its lease, to the stream of c-1 (written to it)."""
    engine = Engine(Store(":memory:"), clock=clock)
    stream = engine.router.connect("g", "c-1", lease_ms=TTL, room=4)
    send(engine, "promise.create", id="t", timeoutAt=FAR, tags=TARGET)
    assert [m.lease for m in messages(stream)] == [("t", 1)]
    return engine, stream


def body(message: Message) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(message.body)
    return decoded


def test_an_execute_carries_the_acquire_the_process_would_have_sent() -> None:
    clock = Clock()
    engine = Engine(Store(":memory:"), clock=clock)
    stream = engine.router.connect("g", "c-1", lease_ms=TTL, room=4)
    send(engine, "promise.create", id="t", timeoutAt=FAR, tags=TARGET)
    (message,) = messages(stream)
    pushed = body(message)
    assert pushed["kind"] == "execute"
    assert pushed["data"] == {"task": {"id": "t", "version": 0}}
    assert message.task == ("t", 0) and message.lease == ("t", 1)
    task = engine.state.tasks["t"]
    assert (task.state, task.version, task.pid, task.ttl) == (TaskState.ACQUIRED, 1, "c-1", TTL)
    # What it carries is what the acquire would have answered: the same task and promise.
    acquired = pushed["acquired"]
    assert acquired["task"] == {
        "id": "t",
        "state": "acquired",
        "version": 1,
        "resumes": 0,
        "ttl": TTL,
        "pid": "c-1",
    }
    assert acquired["promise"] == send(engine, "promise.get", id="t")["data"]["promise"]
    assert acquired["preload"] == []
    # The process goes on at the lease's version; the execute's own is taken.
    assert (
        send(engine, "task.acquire", id="t", version=0, pid="c-1", ttl=TTL)["head"]["status"] == 409
    )
    fulfilled = send(
        engine, "task.fulfill", id="t", version=1, action={"data": {"state": "resolved"}}
    )
    assert fulfilled["head"]["status"] == 200


def test_a_stream_that_asks_for_no_leases_gets_plain_executes() -> None:
    engine = Engine(Store(":memory:"), clock=Clock())
    stream = engine.router.connect("g", "c-1")
    send(engine, "promise.create", id="t", timeoutAt=FAR, tags=TARGET)
    (message,) = messages(stream)
    assert "acquired" not in body(message) and message.lease is None
    assert engine.state.tasks["t"].state is TaskState.PENDING


def test_the_lease_is_in_the_log_and_a_restart_keeps_it(tmp_path: Path) -> None:
    clock = Clock()
    db = str(tmp_path / "server.db")
    first = Engine(Store(db), clock=clock)
    first.router.connect("g", "c-1", lease_ms=TTL, room=4)
    send(first, "promise.create", id="t", timeoutAt=FAR, tags=TARGET)
    first.store.close()
    second = Engine(Store(db), clock=clock)
    task = second.state.tasks["t"]
    assert (task.state, task.version, task.pid) == (TaskState.ACQUIRED, 1, "c-1")


def test_no_more_leases_at_once_than_the_process_has_room_for() -> None:
    engine = Engine(Store(":memory:"), clock=Clock())
    stream = engine.router.connect("g", "c-1", lease_ms=TTL, room=1)
    send(engine, "promise.create", id="t1", timeoutAt=FAR, tags=TARGET)
    send(engine, "promise.create", id="t2", timeoutAt=FAR, tags=TARGET)
    first, second = messages(stream)
    assert first.lease == ("t1", 1) and second.lease is None
    assert engine.state.tasks["t2"].state is TaskState.PENDING
    # Once the first lease ends, the next execute carries one again.
    done = {"data": {"state": "resolved"}}
    send(engine, "task.fulfill", id="t1", version=1, action=done)
    send(engine, "promise.create", id="t3", timeoutAt=FAR, tags=TARGET)
    (third,) = messages(stream)
    assert third.lease == ("t3", 1)


def test_a_stream_gone_before_its_process_was_heard_from_hands_its_leases_back() -> None:
    async def scenario() -> tuple[list[Message], TaskState, int]:
        engine, gone = one_lease_out(Clock())
        other = engine.router.connect("g", "c-2", lease_ms=TTL, room=4)
        engine.router.disconnect(gone)
        await asyncio.sleep(0)  # the release's commit, then its execute
        task = engine.state.tasks["t"]
        return messages(other), task.state, task.version

    sent, state, version = asyncio.run(scenario())
    # Released (version 1, pending), then acquired again for the other member (version 2).
    assert [m.lease for m in sent] == [("t", 2)]
    assert (state, version) == (TaskState.ACQUIRED, 2)


def test_a_stream_gone_after_its_process_was_heard_from_leaves_its_lease() -> None:
    async def scenario() -> tuple[TaskState, int, str | None]:
        clock = Clock()
        engine, stream = one_lease_out(clock)
        clock.now += 1
        child = {"id": "t.1", "timeoutAt": FAR, "param": {}, "tags": {}}
        action = {"kind": "promise.create", "data": child}
        assert send(engine, "task.fence", id="t", version=1, action=action)["head"]["status"] == 200
        clock.now += 1
        engine.router.disconnect(stream)
        await asyncio.sleep(0)
        task = engine.state.tasks["t"]
        return task.state, task.version, task.pid

    # The process took it (it fenced a step of the task): its lease runs on.
    assert asyncio.run(scenario()) == (TaskState.ACQUIRED, 1, "c-1")


def test_a_lease_sent_to_a_silent_process_goes_to_another_member() -> None:
    async def scenario() -> tuple[bool, list[Message]]:
        clock = Clock()
        engine, stopped = one_lease_out(clock)
        live = engine.router.connect("g", "c-2", lease_ms=TTL, room=4)
        clock.now += ACK_TIMEOUT_MS
        engine.tick()
        await asyncio.sleep(0)
        return stopped.unresponsive.is_set(), messages(live)

    unresponsive, sent = asyncio.run(scenario())
    assert unresponsive
    assert [m.lease for m in sent] == [("t", 2)]


@pytest.mark.parametrize(
    ("query", "terms"),
    [
        (b"", None),
        (b"lease=5000&room=64", LeaseTerms(5000, 64)),
        (b"lease=5000", LeaseTerms(5000, 1)),
        (b"room=3&lease=1", LeaseTerms(1, 3)),
    ],
)
def test_a_poll_streams_lease_terms(query: bytes, terms: LeaseTerms | None) -> None:
    assert lease_terms(query) == terms


@pytest.mark.parametrize(
    ("query", "says"),
    [
        (b"lease=0", f"lease must be one whole number from 1 to {MOST_LEASE_MS}"),
        (b"lease=-5", "lease must be one whole number"),
        (b"lease=5.5", "lease must be one whole number"),
        (b"lease=%2B5", "lease must be one whole number"),
        (b"lease=1&lease=2", "lease must be one whole number"),
        (b"lease=5&room=0", f"room must be one whole number from 1 to {MOST_ROOM}"),
        (b"lease=5&room=%C2%B2", "room must be one whole number"),
        (b"room=5", "room without lease"),
        (b"lease=5&ttl=9", "unknown poll stream parameters ['ttl']; valid: lease, room"),
        (b"lease", "a poll stream's query is lease=MS&room=N"),
        (b"lease=5&\xff=1", "a poll stream's query is lease=MS&room=N"),
    ],
)
def test_bad_lease_terms_say_what_is_valid(query: bytes, says: str) -> None:
    with pytest.raises(ValueError) as refused:
        lease_terms(query)
    assert says in str(refused.value)
