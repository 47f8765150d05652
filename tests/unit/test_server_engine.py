"""The server's engine in-process: indexes, durability, recovery, routing decisions."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

from asyncrpc.server.engine import Engine
from asyncrpc.server.router import Address
from asyncrpc.server.store import Store, StoreError
from tests.support.server import (
    FAR,
    Clock,
    envelope,
    promise_of,
    send,
    write_older_server_database,
)


def snapshot_of(engine: Engine) -> list[Any]:
    """Everything observable about the state, in a comparable form."""
    state = engine.state
    promises = sorted((p.id, p.to_json()) for p in state.promises.values())
    tasks = sorted(
        (t.id, t.to_json(), sorted(t.resumes), t.timeout_at) for t in state.tasks.values()
    )
    callbacks = sorted((awaited, sorted(awaiters)) for awaited, awaiters in state.callbacks.items())
    listeners = sorted((awaited, sorted(addrs)) for awaited, addrs in state.listeners.items())
    history = state.history.everything()
    stored = [(s.promise.id, s.promise.to_json(), s.task_version) for s in history]
    dispatched = sorted(state.dispatched)
    return [promises, stored, tasks, callbacks, listeners, dispatched, state.next_due()]


def workflow(engine: Engine, clock: Clock, n: int) -> None:
    """A mix of everything a worker does: create with target, acquire, suspend, settle, timeout."""
    for i in range(n):
        root = f"root{i}"
        target = "poll://any@workers"
        send(engine, "promise.create", id=root, timeoutAt=FAR, tags={"resonate:target": target})
        acquired = send(engine, "task.acquire", id=root, version=0, pid="w1", ttl=5000)
        assert acquired["head"]["status"] == 200
        assert acquired["data"]["task"]["version"] == 1
        child = f"{root}:1"
        send(
            engine,
            "task.fence",
            id=root,
            version=1,
            action={
                "kind": "promise.create",
                "head": {},
                "data": {
                    "id": child,
                    "timeoutAt": FAR,
                    "tags": {"resonate:target": target, "resonate:branch": child},
                },
            },
        )
        suspend = send(
            engine,
            "task.suspend",
            id=root,
            version=1,
            actions=[{"kind": "promise.register_callback", "data": {"awaited": child}}],
        )
        assert suspend["head"]["status"] == 200
        send(engine, "promise.register_listener", awaited=root, address="poll://uni@client/c1")
        if i % 3 == 0:
            send(engine, "promise.settle", id=child, state="resolved", value={"data": "1"})
        if i % 3 == 1:
            send(
                engine,
                "promise.create",
                id=f"{root}:t",
                timeoutAt=clock.now + 10,
                tags={"resonate:target": target, "resonate:timer": "true"},
            )
        clock.now += 7
        engine.tick()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_preload_is_the_rest_of_the_branch(clock: Clock) -> None:
    engine = Engine(Store(":memory:"), clock=clock)
    for i in range(12):
        tags = {"resonate:branch": f"b{i % 4}", "resonate:target": "poll://any@g"}
        send(engine, "promise.create", id=f"p{i}", timeoutAt=FAR, tags=tags)
    acquired = send(engine, "task.acquire", id="p1", version=0, pid="w", ttl=1000)
    assert sorted(r["id"] for r in acquired["data"]["preload"]) == ["p5", "p9"]


def test_state_after_restart_equals_state_before(tmp_path: Path, clock: Clock) -> None:
    db = str(tmp_path / "s.db")
    first = Engine(Store(db, min_log=50), clock=clock)
    workflow(first, clock, 120)
    before = snapshot_of(first)
    assert first.store.log_length < 120 * 6, "the log was never compacted"
    # No clean shutdown (no snapshot): reopen the same file as a crashed server leaves it.
    first.store.close()
    second = Engine(Store(db, min_log=50), clock=clock)
    assert snapshot_of(second) == before
    assert len(second.state.promises) == len(first.state.promises)


def test_recovery_replays_only_the_log_after_the_snapshot(tmp_path: Path, clock: Clock) -> None:
    db = str(tmp_path / "s.db")
    first = Engine(Store(db, min_log=100), clock=clock)
    workflow(first, clock, 200)
    first.store.close()
    second = Engine(Store(db, min_log=100), clock=clock)
    assert second.recovered_entries <= max(100, len(first.state.promises) // 4)


def test_reads_are_not_logged(clock: Clock) -> None:
    engine = Engine(Store(":memory:"), clock=clock)
    send(engine, "promise.create", id="p", timeoutAt=FAR)
    length = engine.store.log_length
    send(engine, "promise.search", tags={})
    send(engine, "task.get", id="p")
    assert engine.store.log_length == length


def test_promise_search_filters_by_origin_tag_and_pages(clock: Clock) -> None:
    engine = Engine(Store(":memory:"), clock=clock)
    for i in range(5):
        send(engine, "promise.create", id=f"r:{i}", timeoutAt=FAR, tags={"resonate:origin": "r"})
    send(engine, "promise.create", id="other", timeoutAt=FAR, tags={"resonate:origin": "o"})
    page = send(engine, "promise.search", tags={"resonate:origin": "r"}, limit=3)["data"]
    assert [p["id"] for p in page["promises"]] == ["r:0", "r:1", "r:2"]
    rest = send(engine, "promise.search", tags={"resonate:origin": "r"}, cursor=page["cursor"])
    assert [p["id"] for p in rest["data"]["promises"]] == ["r:3", "r:4"]
    assert "cursor" not in rest["data"]
    by_prefix = send(engine, "promise.search", idPrefix="oth")["data"]["promises"]
    assert [p["id"] for p in by_prefix] == ["other"]


def test_promise_search_newest_first_is_one_bounded_page(tmp_path: Path, clock: Clock) -> None:
    db = str(tmp_path / "s.db")
    engine = Engine(Store(db, min_log=40), clock=clock)
    for i in range(60):
        for group in ("a", "b"):
            target = f"poll://any@{group}"
            send(
                engine,
                "promise.create",
                id=f"{group}{i}",
                timeoutAt=FAR,
                tags={"resonate:target": target},
            )
        clock.now += 1
    for settled in ("a57", "a59", "b10"):  # settled: on disk, and out of memory
        send(engine, "promise.settle", id=settled, state="resolved", value={"data": "1"})
    assert "a59" not in engine.state.promises and "a58" in engine.state.promises

    def newest(**data: Any) -> list[str]:
        answer = send(engine, "promise.search", order="newest", **data)
        assert answer["head"]["status"] == 200 and "cursor" not in answer["data"]
        return [p["id"] for p in answer["data"]["promises"]]

    assert newest(tags={"resonate:target": "poll://any@a"}, limit=3) == ["a59", "a58", "a57"]
    assert newest(limit=2) == ["b59", "a59"]
    assert newest(tags={"resonate:target": "poll://any@a"}, idPrefix="a1", limit=2) == [
        "a19",
        "a18",
    ]
    assert newest(tags={"resonate:target": "poll://any@none"}) == []
    assert newest(state="resolved") == ["a59", "a57", "b10"]
    assert newest(state="pending", tags={"resonate:target": "poll://any@a"}, limit=2) == [
        "a58",
        "a56",
    ]
    for bad in ({"order": "oldest"}, {"order": "newest", "cursor": "a1"}, {"limit": 0}):
        answer = send(engine, "promise.search", **{"order": "newest", **bad})
        assert answer["head"]["status"] == 400, bad
    engine.store.close()
    restarted = Engine(Store(db, min_log=40), clock=clock)  # a snapshot and a log replayed
    answer = send(
        restarted,
        "promise.search",
        order="newest",
        limit=3,
        tags={"resonate:target": "poll://any@b"},
    )
    assert [p["id"] for p in answer["data"]["promises"]] == ["b59", "b58", "b57"]


def test_task_get_returns_the_task_or_404(clock: Clock) -> None:
    engine = Engine(Store(":memory:"), clock=clock)
    send(engine, "promise.create", id="p", timeoutAt=FAR, tags={"resonate:target": "poll://any@g"})
    assert send(engine, "task.get", id="p")["data"]["task"]["state"] == "pending"
    assert send(engine, "task.get", id="nope")["head"]["status"] == 404


def test_timers_fire_when_due_and_are_logged_only_then(clock: Clock) -> None:
    engine = Engine(Store(":memory:"), clock=clock)
    tags = {"resonate:target": "poll://any@g", "resonate:timer": "true"}
    send(engine, "promise.create", id="sleep", timeoutAt=clock.now + 1000, tags=tags)
    length = engine.store.log_length
    engine.tick()
    assert engine.state.promises["sleep"].state == "pending"
    assert engine.store.log_length == length
    clock.now += 1000
    engine.tick()
    assert promise_of(engine, "sleep").state == "resolved"
    assert engine.store.log_length == length + 1


def test_connecting_member_gets_waiting_work_at_once(clock: Clock) -> None:
    engine = Engine(Store(":memory:"), clock=clock)
    send(
        engine, "promise.create", id="job", timeoutAt=FAR, tags={"resonate:target": "poll://any@g"}
    )
    stream = engine.router.connect("g", "late-joiner")
    message = stream.queue.get_nowait()
    assert message.task == ("job", 0)
    assert msgspec.json.decode(message.body) == {
        "kind": "execute",
        "head": {},
        "data": {"task": {"id": "job", "version": 0}},
    }


def test_work_on_a_dead_stream_goes_to_another_member(clock: Clock) -> None:
    engine = Engine(Store(":memory:"), clock=clock)
    first = engine.router.connect("g", "one")
    second = engine.router.connect("g", "two")
    for i in range(4):
        tags = {"resonate:target": "poll://any@g"}
        send(engine, "promise.create", id=f"job{i}", timeoutAt=FAR, tags=tags)
    assert first.queue.qsize() == 2 and second.queue.qsize() == 2
    engine.router.disconnect(first)
    assert second.queue.qsize() == 4


def test_unblock_for_a_disconnected_process_waits_for_it(clock: Clock) -> None:
    engine = Engine(Store(":memory:"), clock=clock)
    send(engine, "promise.create", id="p", timeoutAt=FAR)
    send(engine, "promise.register_listener", awaited="p", address="poll://uni@client/c1")
    send(engine, "promise.settle", id="p", state="resolved", value={"data": "3"})
    stream = engine.router.connect("client", "c1")
    message = msgspec.json.decode(stream.queue.get_nowait().body)
    assert message["kind"] == "unblock"
    assert message["head"] == {}
    assert message["data"]["promise"]["id"] == "p"
    assert message["data"]["promise"]["value"] == {"headers": {}, "data": "3"}
    assert message["data"]["promise"]["settledAt"] == engine.clock()


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("poll://any@g", Address("g", None, False)),
        ("poll://uni@g/p1", Address("g", "p1", True)),
        ("poll://any@g/p1", Address("g", "p1", False)),
        ("poll://uni@g", None),
        ("http://x", None),
        ("poll://all@g", None),
    ],
)
def test_address_parsing(address: str, expected: Address | None) -> None:
    assert Address.parse(address) == expected


def test_engine_never_raises_on_garbage(clock: Clock) -> None:
    engine = Engine(Store(":memory:"), clock=clock)
    bodies = [
        b"",
        b"null",
        b"{}",
        b'{"kind": 1}',
        b'{"kind": "task.suspend", "data": {"id": "x",'
        b' "actions": [1, null, {"kind": "x", "data": 5}]}}',
    ]
    for body, n in zip(bodies, itertools.count()):
        reply = engine.handle(body)
        assert 400 <= reply.status < 500 or reply.status in (200, 501), (n, reply)


class CountingStore(Store):
    """A store that remembers how many entries each commit wrote."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.commits: list[int] = []

    def commit(self) -> None:
        if self.staged:
            self.commits.append(self.staged)
        super().commit()


def test_requests_of_one_loop_turn_share_one_commit_and_reads_wait_for_it() -> None:
    store = CountingStore()
    engine = Engine(store, clock=Clock())

    async def one_turn() -> list[dict[str, Any]]:
        bodies = [envelope("promise.create", id=f"p{i}", timeoutAt=FAR) for i in range(5)]
        bodies.append(envelope("task.get", id="p0"))  # a read: stages nothing, waits for the commit
        replies = await asyncio.gather(*(engine.handle_grouped(body) for body in bodies))
        return [msgspec.json.decode(reply.body) for reply in replies]

    replies = asyncio.run(one_turn())
    assert [reply["head"]["status"] for reply in replies] == [200] * 5 + [404]
    assert store.commits == [5]
    assert store.log_length == 5
    alone = asyncio.run(engine.handle_grouped(envelope("task.get", id="p1")))
    assert alone.status == 404
    assert store.commits == [5]  # a read with nothing pending commits nothing


def test_a_settled_task_is_not_offered_to_a_connecting_worker(clock: Clock) -> None:
    engine = Engine(Store(":memory:"), clock=clock)
    tags = {"resonate:target": "poll://any@g"}
    send(engine, "promise.create", id="job", timeoutAt=FAR, tags=tags)
    send(engine, "promise.settle", id="job", state="resolved")
    stream = engine.router.connect("g", "w")
    assert stream.queue.empty()


def test_a_delayed_task_waits_for_its_delay(clock: Clock) -> None:
    engine = Engine(Store(":memory:"), clock=clock)
    stream = engine.router.connect("g", "w")
    tags = {"resonate:target": "poll://any@g", "resonate:delay": str(clock.now + 3000)}
    send(engine, "promise.create", id="later", timeoutAt=FAR, tags=tags)
    assert stream.queue.empty()
    assert engine.router.connect("g", "other").queue.empty()
    clock.now += 3000
    engine.tick()
    messages = [stream.queue.get_nowait() for _ in range(stream.queue.qsize())]
    assert [m.task for m in messages] == [("later", 0)]


def test_a_database_of_another_format_is_refused_clearly(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    write_older_server_database(db)
    with pytest.raises(StoreError, match=r"format 1.*reads format 4"):
        Store(str(db))


def test_a_new_database_records_its_format(tmp_path: Path) -> None:
    db = str(tmp_path / "new.db")
    Store(db).close()
    with contextlib.closing(sqlite3.connect(db)) as connection:
        row = connection.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    assert row == ("4",)
    Store(db).close()  # and opens again
