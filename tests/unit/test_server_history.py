"""History on disk: settled promises leave memory, every read still finds them, a restart
loads only what is in flight, an older format is upgraded, and retention deletes in batches
that never hold a request up for long."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import TARGET_TAG
from asyncrpc.server import retention
from asyncrpc.server.engine import Engine
from asyncrpc.server.history import WRITE_BATCH, History, SearchFilter, Settled
from asyncrpc.server.records import Promise, Value
from asyncrpc.server.store import Snapshot, Store
from harness.history import seed
from tests.support.server import FAR, Clock, envelope, held, send

TARGET = {"resonate:target": "poll://any@g"}
HOUR = 3_600_000


def ids(answer: dict[str, Any], key: str = "promises") -> list[str]:
    return [record["id"] for record in answer["data"][key]]


def invocation(engine: Engine, root: str, steps: int, settle: int) -> None:
    """A root with ``steps`` steps in its branch; the first ``settle`` steps settle."""
    tags = {**TARGET, "resonate:origin": root, "resonate:branch": root}
    send(engine, "promise.create", id=root, timeoutAt=FAR, tags=tags)
    for i in range(steps):
        send(engine, "promise.create", id=f"{root}.{i}", timeoutAt=FAR, tags=tags)
    for i in range(settle):
        send(engine, "promise.settle", id=f"{root}.{i}", state="resolved", value={"data": str(i)})


def test_settled_promises_leave_memory_and_every_read_still_finds_them(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    engine = Engine(Store(db), clock=Clock())
    invocation(engine, "r", steps=5, settle=3)
    settled = send(engine, "promise.get", id="r.1")["data"]["promise"]
    in_flight = ["r", "r.3", "r.4"]
    assert sorted(engine.state.promises) == in_flight, "settled promises stayed in memory"
    assert sorted(engine.state.tasks) == in_flight

    def preload(server: Engine, promise_id: str) -> list[str]:
        acquired = send(server, "task.acquire", id=promise_id, version=0, pid="w", ttl=FAR)
        return sorted(record["id"] for record in acquired["data"]["preload"])

    def reads(server: Engine) -> list[Any]:
        again = send(server, "promise.create", id="r.1", timeoutAt=FAR, tags={})
        first = send(server, "promise.search", tags={"resonate:origin": "r"}, limit=2)["data"]
        rest = send(
            server, "promise.search", tags={"resonate:origin": "r"}, cursor=first["cursor"]
        )["data"]
        return [
            send(server, "promise.get", id="r.1")["data"]["promise"],
            again["data"]["promise"],
            send(server, "task.get", id="r.1")["data"]["task"],
            [record["id"] for record in first["promises"]],
            [record["id"] for record in rest["promises"]],
            "cursor" in rest,
            ids(send(server, "promise.search", state="resolved")),
            ids(send(server, "promise.search", state="pending")),
            ids(send(server, "promise.search", idPrefix="r.", tags={"resonate:branch": "r"})),
            ids(send(server, "task.search", state="fulfilled"), "tasks"),
            send(server, "task.acquire", id="r.1", version=0, pid="w", ttl=1)["head"]["status"],
        ]

    before = reads(engine)
    assert before[0] == settled and before[1] == settled
    assert before[2] == {"id": "r.1", "state": "fulfilled", "version": 0, "resumes": 0}
    assert before[3:6] == [["r", "r.0"], ["r.1", "r.2", "r.3", "r.4"], False]
    assert before[6] == ["r.0", "r.1", "r.2"] and before[7] == in_flight
    assert before[8] == ["r.0", "r.1", "r.2", "r.3", "r.4"]
    assert before[9] == ["r.0", "r.1", "r.2"] and before[10] == 409
    assert preload(engine, "r.3") == ["r", "r.0", "r.1", "r.2", "r.4"]
    engine.store.close(write_rows=False)  # as a crash leaves it: the rows were never written
    restarted = Engine(Store(db), clock=Clock())
    assert sorted(restarted.state.promises) == in_flight
    assert restarted.state.history.count() == 3
    assert restarted.state.history.unwritten == 3, "the replay did not make the rows again"
    assert reads(restarted) == before
    restarted.tick()
    assert restarted.state.history.unwritten == 0
    assert reads(restarted) == before
    assert preload(restarted, "r.4") == ["r", "r.0", "r.1", "r.2", "r.3"]
    restarted.store.close(write_rows=False)
    again = Engine(Store(db), clock=Clock())
    assert again.state.history.unwritten == 0 and again.state.history.count() == 3
    assert reads(again) == before


def test_rows_of_settled_promises_are_written_together_and_read_alike_meanwhile(
    tmp_path: Path,
) -> None:
    """A settled promise's row waits, with others, for a batch, a tick or a snapshot: every
    read answers the same before and after it is written."""
    engine = Engine(Store(str(tmp_path / "s.db")), clock=Clock())
    history = engine.state.history
    statements: list[str] = []
    engine.store._db.set_trace_callback(statements.append)
    tags = {**TARGET, "resonate:origin": "o", "resonate:branch": "o"}
    send(engine, "promise.create", id="o", timeoutAt=FAR, tags=tags)
    for i in range(5):
        send(engine, "promise.create", id=f"o.{i}", timeoutAt=FAR, tags=tags)
        if i % 2 == 0:
            send(engine, "promise.settle", id=f"o.{i}", state="resolved", value={"data": "1"})
    send(engine, "task.acquire", id="o.1", version=0, pid="w", ttl=FAR)
    assert history.unwritten == 3 and history.count() == 3
    assert not any(sql.startswith("INSERT OR REPLACE INTO promises") for sql in statements)

    def reads() -> list[Any]:
        return [
            send(engine, "promise.get", id="o.2")["data"],
            send(engine, "promise.search", tags={"resonate:origin": "o"}, limit=3)["data"],
            send(engine, "promise.search", state="resolved", idPrefix="o.")["data"],
            send(engine, "promise.search", tags=TARGET, order="newest", limit=3)["data"],
            send(engine, "task.search", state="fulfilled")["data"],
            send(engine, "task.get", id="o.4")["data"],
            sorted(record["id"] for record in engine.state._preload(engine.state.promises["o"], 0)),
            history.count_by_state(),
            history.fulfilled_count(),
            [settled.promise.id for settled in history.everything()],
        ]

    waiting = reads()
    assert waiting[2]["promises"] and [p["id"] for p in waiting[2]["promises"]] == [
        "o.0",
        "o.2",
        "o.4",
    ]
    engine.tick()
    assert history.unwritten == 0 and history.count() == 3
    assert reads() == waiting
    for i in range(WRITE_BATCH):
        send(engine, "promise.create", id=f"b{i}", timeoutAt=FAR, tags={})
        send(engine, "promise.settle", id=f"b{i}", state="resolved")
    assert history.unwritten == 0, "a full batch of rows was not written"
    send(engine, "promise.create", id="last", timeoutAt=FAR, tags={})
    send(engine, "promise.settle", id="last", state="resolved")
    assert history.unwritten == 1
    engine.store.write_snapshot(engine.state)
    assert history.unwritten == 0, "a snapshot was written before the rows it covers"
    engine.store.close(write_rows=False)
    restarted = Engine(Store(str(tmp_path / "s.db")), clock=Clock())
    assert restarted.state.history.count() == 3 + WRITE_BATCH + 1
    assert send(restarted, "promise.get", id="last")["data"]["promise"]["state"] == "resolved"


def test_a_search_pages_through_memory_and_disk_in_id_order(tmp_path: Path) -> None:
    engine = Engine(Store(str(tmp_path / "s.db")), clock=Clock())
    tags = {"resonate:origin": "o"}
    for i in range(30):
        send(engine, "promise.create", id=f"p{i:02d}", timeoutAt=FAR, tags=tags)
        if i % 3:
            send(engine, "promise.settle", id=f"p{i:02d}", state="resolved")
    assert len(engine.state.promises) == 10
    for search in ({"tags": tags}, {"idPrefix": "p"}, {}, {"tags": {"x": "1", **tags}}):
        seen: list[str] = []
        cursor = None
        while True:
            data = send(engine, "promise.search", limit=4, **search, **_cursor(cursor))["data"]
            seen.extend(record["id"] for record in data["promises"])
            cursor = data.get("cursor")
            if cursor is None:
                break
        expected = [] if "x" in search.get("tags", {}) else [f"p{i:02d}" for i in range(30)]
        assert seen == expected, search


def _cursor(cursor: str | None) -> dict[str, str]:
    return {} if cursor is None else {"cursor": cursor}


def test_the_replay_sees_the_history_as_of_the_snapshot(tmp_path: Path) -> None:
    """A step created, awaited and settled after the snapshot: its row is on disk, but the
    replayed suspend must find it open, as it first did, or the root is not resumed."""
    db = str(tmp_path / "s.db")
    clock = Clock()
    engine = Engine(Store(db), clock=clock)
    send(engine, "promise.create", id="root", timeoutAt=FAR, tags=TARGET)
    send(engine, "task.acquire", id="root", version=0, pid="w", ttl=FAR)
    engine.store.write_snapshot(engine.state)
    send(engine, "promise.create", id="child", timeoutAt=FAR, tags=TARGET)
    action = {"kind": "promise.register_callback", "data": {"awaited": "child"}}
    assert (
        send(engine, "task.suspend", id="root", version=1, actions=[action])["head"]["status"]
        == 200
    )
    send(engine, "promise.settle", id="child", state="resolved")
    assert send(engine, "task.get", id="root")["data"]["task"]["state"] == "pending"
    engine.store.close()
    restarted = Engine(Store(db), clock=clock)
    assert send(restarted, "task.get", id="root")["data"]["task"]["state"] == "pending"
    assert sorted(restarted.state.promises) == ["root"]


def test_a_replay_reads_what_retention_deleted_after_the_snapshot(tmp_path: Path) -> None:
    """Retention's deleted rows stay readable to a replayed request that came before."""
    db = str(tmp_path / "s.db")
    clock = Clock()
    engine = Engine(Store(db), clock=clock, retain_ms=HOUR)
    send(engine, "promise.create", id="old", timeoutAt=FAR, tags={"resonate:external": "true"})
    send(engine, "promise.settle", id="old", state="resolved")
    send(engine, "promise.create", id="root", timeoutAt=FAR, tags=TARGET)
    send(engine, "task.acquire", id="root", version=0, pid="w", ttl=FAR)
    # A step the running root awaited settles: the root owes itself a resume.
    step_tags = {"resonate:external": "true", "resonate:origin": "root"}
    send(engine, "promise.create", id="step", timeoutAt=FAR, tags=step_tags)
    send(engine, "promise.register_callback", awaited="step", awaiter="root")
    send(engine, "promise.settle", id="step", state="resolved")
    assert send(engine, "task.get", id="root")["data"]["task"]["resumes"] == 1
    engine.store.write_snapshot(engine.state)
    clock.now += 2 * HOUR
    action = {"kind": "promise.register_callback", "data": {"awaited": "old"}}
    # "old" is settled: 300, and the resume is spent (a missing one would be a 422).
    assert (
        send(engine, "task.suspend", id="root", version=1, actions=[action])["head"]["status"]
        == 300
    )
    engine.tick()
    assert held(engine) == ["root", "step"]
    after = send(engine, "task.get", id="root")["data"]["task"]
    assert after["resumes"] == 0
    engine.store.close()
    restarted = Engine(Store(db), clock=clock)
    assert held(restarted) == ["root", "step"]
    assert restarted.recovered_entries == 2  # the suspend and the retention batch
    assert send(restarted, "task.get", id="root")["data"]["task"] == after


def settled_promises(count: int, now: int) -> Iterator[Settled]:
    """``count`` settled invocations' promises: a root and two steps each."""
    for i in range(count):
        root = f"h{i // 3:07d}"
        promise_id = root if i % 3 == 0 else f"{root}.{i % 3}"
        tags = {**TARGET, "resonate:origin": root, "resonate:branch": root}
        promise = Promise(
            id=promise_id,
            state=PromiseState.RESOLVED,
            param=Value(data='{"func": "foo", "args": [1]}'),
            value=Value(data='{"message": 3}'),
            tags=tags,
            timeout_at=FAR,
            created_at=now - 10 * HOUR + i,
            settled_at=now - 10 * HOUR + i + 1,
        )
        yield Settled(promise, 1)


def test_many_stored_promises_do_not_slow_a_restart_after_a_crash(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    clock = Clock()
    store = Store(db)
    assert store.import_settled(settled_promises(50_000, clock.now)) == 50_000
    engine = Engine(store, clock=clock)
    for i in range(20):
        send(engine, "promise.create", id=f"live{i}", timeoutAt=FAR, tags=TARGET)
    engine.store.close()  # a kill -9: no snapshot
    started = time.perf_counter()
    restarted = Engine(Store(db), clock=clock)
    took = time.perf_counter() - started
    assert sorted(restarted.state.promises) == sorted(f"live{i}" for i in range(20))
    assert took < 1.0, f"recovery with 50,000 stored promises took {took:.2f}s"
    assert send(restarted, "promise.get", id="h0001234.2")["data"]["promise"]["state"] == (
        "resolved"
    )
    graph = send(restarted, "promise.search", tags={"resonate:origin": "h0016000"})
    assert ids(graph) == ["h0016000", "h0016000.1", "h0016000.2"]
    assert restarted.state.history.count() == 50_000
    restarted.store.close()


def test_retention_deletes_a_backlog_without_holding_requests_up(tmp_path: Path) -> None:
    clock = Clock()
    store = Store(str(tmp_path / "s.db"))
    backlog = 20_000
    store.import_settled(settled_promises(backlog, clock.now))
    engine = Engine(store, clock=clock, retain_ms=HOUR)

    async def serve_while_retention_runs() -> list[int]:
        engine.start()
        forgotten_while_waiting: list[int] = []
        i = 0
        while (before := engine.state.history.count()) > 0:
            assert i < 100_000, "retention never caught up"
            body = envelope("promise.create", id=f"n{i}", timeoutAt=FAR)
            reply = await engine.handle_grouped(body)
            forgotten_while_waiting.append(before - engine.state.history.count())
            assert reply.status == 200
            i += 1
            await asyncio.sleep(0.001)
        await engine.stop()
        return forgotten_while_waiting

    forgotten = asyncio.run(serve_while_retention_runs())
    # The backlog takes many batches, and requests are answered between them. Counted, not
    # timed: from a request's send until its caller runs again, the batch whose commit
    # carries the request and at most one more (queued before the caller's wake-up) are
    # deleted, never the backlog.
    assert backlog // retention.GC_BATCH >= 100
    assert len(forgotten) >= 10, "requests were not served between the batches"
    assert max(forgotten) <= 2 * retention.GC_BATCH, sorted(forgotten)[-5:]


def test_a_format_3_database_is_upgraded_in_place(tmp_path: Path) -> None:
    """Format 3 kept every promise in its snapshot; the upgrade moves the settled ones to the
    table, replays the log (an old retention batch included) and rewrites the snapshot."""
    clock = Clock()
    source = Engine(Store(":memory:"), clock=clock)
    invocation(source, "kept", steps=2, settle=1)
    invocation(source, "gone", steps=1, settle=1)
    send(source, "promise.settle", id="gone", state="resolved")
    state = source.state
    everything = [*state.promises.values(), *(s.promise for s in state.history.everything())]
    tasks = [*state.tasks.values()]
    tasks += [t for p in everything if p.id not in state.tasks and (t := state.task(p.id))]
    snapshot = Snapshot(
        promises=everything, tasks=tasks, schedules=[], callbacks=[], listeners=[], dispatched=[]
    )
    db = tmp_path / "old.db"
    connection = sqlite3.connect(db)
    connection.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE log (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, request BLOB);"
        "CREATE TABLE snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL,"
        " state BLOB NOT NULL);"
        "INSERT INTO meta VALUES ('format', '3');"
    )
    body = zlib.compress(msgspec.json.encode(snapshot))
    old_gc = msgspec.json.encode(
        {"kind": "server.gc", "head": {}, "data": {"settledBefore": clock.now + 1, "limit": 10}}
    )
    settle = envelope("promise.settle", id="kept.1", state="resolved")
    connection.execute("INSERT INTO snapshot VALUES (1, 7, ?)", (body,))
    connection.executemany(
        "INSERT INTO log VALUES (?, ?, ?)", [(8, clock.now + 5, old_gc), (9, clock.now + 6, settle)]
    )
    connection.commit()
    connection.close()

    upgraded = Engine(Store(str(db)), clock=clock)
    # The old batch forgot the settled invocation "gone"; "kept" is running: its step stays.
    assert held(upgraded) == ["kept", "kept.0", "kept.1"]
    assert sorted(upgraded.state.promises) == ["kept"]
    assert send(upgraded, "promise.get", id="kept.1")["data"]["promise"]["state"] == "resolved"
    upgraded.store.close()
    with sqlite3.connect(db) as check:
        assert check.execute("SELECT value FROM meta").fetchone() == ("4",)
        assert check.execute("SELECT COUNT(*) FROM log").fetchone() == (0,)
    again = Engine(Store(str(db)), clock=clock)
    assert held(again) == ["kept", "kept.0", "kept.1"] and again.recovered_entries == 0
    again.store.close()


@pytest.mark.parametrize("state", ["resolved", "rejected"])
def test_a_settled_promise_is_final_wherever_it_lives(tmp_path: Path, state: str) -> None:
    engine = Engine(Store(str(tmp_path / "s.db")), clock=Clock())
    send(engine, "promise.create", id="p", timeoutAt=FAR)
    first = send(engine, "promise.settle", id="p", state=state, value={"data": "1"})
    again = send(engine, "promise.settle", id="p", state="resolved", value={"data": "2"})
    assert again["data"] == first["data"] and "p" not in engine.state.promises


def test_a_search_by_target_reads_its_index_in_id_order_without_sorting(tmp_path: Path) -> None:
    """SQLite is asked so that it walks an index in id order: no sort of every match (at 1M
    stored, a third of the table), whatever the history holds."""
    db = tmp_path / "s.db"
    seed(db, 3_000, "old")
    connection = sqlite3.connect(db)
    history = History(connection)
    statements: list[str] = []
    connection.set_trace_callback(statements.append)
    target = "poll://any@service-a"
    for cursor, state in (("", None), ("old-00000500", None), ("", "resolved")):
        wanted = SearchFilter(prefix="", cursor=cursor, tags={TARGET_TAG: target}, state=state)
        found = history.search(wanted, 100, skip=())
        assert len(found) == 100 and all(p.tags[TARGET_TAG] == target for p in found)
        assert [p.id for p in found] == sorted(p.id for p in found)
        assert all(p.id > cursor for p in found)
    connection.set_trace_callback(None)
    reads = [sql for sql in statements if sql.startswith("SELECT id, record FROM promises")]
    assert len(reads) == 3, statements
    for sql in reads:
        plan = connection.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
        assert not any("TEMP B-TREE" in row[-1] for row in plan), (sql, plan)
    connection.close()


def test_a_branch_read_as_empty_shows_the_rows_written_after(tmp_path: Path) -> None:
    """The empty branches ``preload`` remembers are forgotten when a row of theirs is written."""
    engine = Engine(Store(str(tmp_path / "s.db")), clock=Clock())
    invocation(engine, "r", steps=2, settle=0)

    def preload() -> list[str]:
        version = send(engine, "task.get", id="r")["data"]["task"]["version"]
        acquired = send(engine, "task.acquire", id="r", version=version, pid="w", ttl=FAR)
        send(engine, "task.release", id="r", version=version + 1)
        return sorted(record["id"] for record in acquired["data"]["preload"])

    assert preload() == ["r.0", "r.1"]  # from memory; the disk holds no row of branch r
    assert engine.state.history.branch("r") == []
    send(engine, "promise.settle", id="r.0", state="resolved", value={"data": "0"})
    assert "r.0" not in engine.state.promises, "a settled step stayed in memory"
    assert [promise.id for promise in engine.state.history.branch("r")] == ["r.0"]
    assert preload() == ["r.0", "r.1"]
