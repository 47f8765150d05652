"""The store's rules: one writer per database, owner-only files, nothing acknowledged that a
failed commit lost (and serving again by itself once the disk takes writes), and a damaged
database refused clearly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import stat
import zlib
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from resonate.transport import Response

from asyncrpc.server.app import ServerApp
from asyncrpc.server.engine import WRITE_RETRY_MS, Engine, Reply
from asyncrpc.server.store import Store, StoreError
from tests.support.server import DAMAGED_LOG_ROW, create, damaged, envelope


class FailingWrites(sqlite3.Connection):
    """A connection whose writes fail once ``failing`` is set (a full or broken disk), and
    whose reads fail too once ``unreadable`` is."""

    failing = False
    unreadable = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        statement = sql.lstrip().upper()
        if self.failing and statement.startswith(("INSERT", "UPDATE", "DELETE", "COMMIT")):
            raise sqlite3.OperationalError("disk I/O error")
        if self.unreadable and statement.startswith("SELECT"):
            raise sqlite3.OperationalError("disk I/O error")
        return super().execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.failing:
            raise sqlite3.OperationalError("disk I/O error")
        return super().executemany(sql, *args)


def failing_connect(path: str) -> FailingWrites:
    return sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, factory=FailingWrites
    )


def get(promise_id: str) -> bytes:
    return envelope("promise.get", id=promise_id)


def test_a_failed_commit_acknowledges_nothing_and_serving_resumes_when_the_disk_does(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "s.db")
    failures: list[str] = []
    now = [1_000]
    engine = Engine(
        Store(db, connect=failing_connect),
        clock=lambda: now[0],
        on_failure=lambda: failures.append("x"),
    )
    stream = engine.router.connect("g", "w")
    assert engine.handle(create("kept")).status == 200
    stream.queue.get_nowait()
    engine.store._db.failing = True  # type: ignore[attr-defined]

    async def grouped() -> list[Reply]:
        return await asyncio.gather(*(engine.handle_grouped(create(f"lost{i}")) for i in range(3)))

    replies = asyncio.run(grouped())
    assert [reply.status for reply in replies] == [503, 503, 503]
    envelope = msgspec.json.decode(replies[0].body)
    assert envelope["kind"] == "promise.create" and envelope["head"]["corrId"] == "c"
    assert "disk I/O error" in (replies[0].detail or "")
    assert stream.queue.empty(), "an execute of an uncommitted promise went out"
    assert failures == [] and not engine.fatal
    # The state is the disk's again: what failed never happened, what was acknowledged is there.
    assert engine.handle(get("lost0")).status == 404
    assert engine.handle(get("kept")).status == 200
    refused = engine.handle(create("later"))
    assert refused.status == 503 and "refuses changes" in (refused.detail or "")
    # The disk takes writes again: no step by hand, changes are served within a retry.
    engine.store._db.failing = False  # type: ignore[attr-defined]
    assert engine.handle(create("too-soon")).status == 503
    now[0] += WRITE_RETRY_MS
    engine.tick()
    assert engine.failed is None
    assert engine.handle(create("after")).status == 200
    assert msgspec.json.decode(stream.queue.get_nowait().body)["data"]["task"]["id"] == "after"
    assert stream.queue.empty()
    asyncio.run(engine.stop())
    restarted = Engine(Store(db))
    assert sorted(restarted.state.promises) == ["after", "kept"]


def test_a_request_whose_entry_a_failed_timer_commit_took_is_not_acknowledged(
    tmp_path: Path,
) -> None:
    """A tick commits whatever is staged, the waiting request's entry too: when that
    commit fails, the request gets a 503, not the 200 of the empty commit after it."""
    engine = Engine(Store(str(tmp_path / "s.db"), connect=failing_connect))

    async def race() -> Reply:
        waiting = asyncio.ensure_future(engine.handle_grouped(create("raced")))
        await asyncio.sleep(0)  # applied and staged; its group commit is scheduled
        assert engine.store.staged == 1
        engine.store._db.failing = True  # type: ignore[attr-defined]
        with pytest.raises(Exception, match="disk I/O error"):
            engine.tick()  # the timer's turn comes first
        engine.store._db.failing = False  # type: ignore[attr-defined]
        return await waiting

    reply = asyncio.run(race())
    assert reply.status == 503, reply
    assert "raced" not in engine.state.promises


def test_a_failed_commit_of_a_single_request_is_a_503(tmp_path: Path) -> None:
    engine = Engine(Store(str(tmp_path / "s.db"), connect=failing_connect))
    engine.store._db.failing = True  # type: ignore[attr-defined]
    reply = engine.handle(create("lost"))
    assert reply.status == 503 and "disk I/O error" in (reply.detail or "")
    assert msgspec.json.decode(reply.body)["kind"] == "promise.create"
    # The SDK's own parse of a response (the gateway's "decoding error" on a null kind).
    answer = msgspec.json.decode(reply.body, type=Response)
    assert (answer.kind, answer.head.status) == ("promise.create", 503)


def test_a_change_that_arrives_after_the_retry_time_tries_the_disk_itself(
    tmp_path: Path,
) -> None:
    now = [1_000]
    engine = Engine(Store(str(tmp_path / "s.db"), connect=failing_connect), clock=lambda: now[0])
    engine.store._db.failing = True  # type: ignore[attr-defined]
    assert engine.handle(create("lost")).status == 503
    engine.store._db.failing = False  # type: ignore[attr-defined]
    now[0] += WRITE_RETRY_MS
    assert engine.handle(create("served")).status == 200
    assert sorted(engine.state.promises) == ["served"]


def test_a_failed_timer_commit_refuses_changes_until_the_disk_takes_writes(
    tmp_path: Path,
) -> None:
    now = [1_000]
    engine = Engine(Store(str(tmp_path / "s.db"), connect=failing_connect), clock=lambda: now[0])
    data = {"id": "t", "timeoutAt": 2_000, "tags": {"resonate:target": "poll://any@g"}}
    engine.handle(msgspec.json.encode({"kind": "promise.create", "head": {}, "data": data}))
    engine.store._db.failing = True  # type: ignore[attr-defined]
    now[0] = 3_000
    with pytest.raises(Exception, match="disk I/O error"):
        engine.tick()
    assert engine.failed is not None and not engine.fatal
    answer = msgspec.json.decode(engine.handle(get("t")).body)
    assert answer["data"]["promise"]["state"] == "rejected_timedout"  # read as of now
    assert engine.state.promises["t"].state == "pending"  # the timeout never reached the disk
    now[0] += WRITE_RETRY_MS
    engine.tick()
    assert engine.failed is not None, "the disk still refuses writes"
    engine.store._db.failing = False  # type: ignore[attr-defined]
    now[0] += WRITE_RETRY_MS
    engine.tick()
    assert engine.failed is None
    assert "t" not in engine.state.promises  # settled now: its row is on disk
    stored = engine.store.history.promise("t")
    assert stored is not None and stored.state == "rejected_timedout"
    assert stored.settled_at == 2_000


def test_a_state_that_cannot_be_read_back_stops_the_server(tmp_path: Path) -> None:
    failures: list[str] = []
    engine = Engine(
        Store(str(tmp_path / "s.db"), connect=failing_connect),
        on_failure=lambda: failures.append("x"),
    )
    assert engine.handle(create("kept")).status == 200
    engine.store._db.failing = engine.store._db.unreadable = True  # type: ignore[attr-defined]
    assert engine.handle(create("lost")).status == 503
    assert failures == ["x"] and engine.fatal
    reply = engine.handle(get("kept"))
    assert reply.status == 503 and "stopping" in (reply.detail or "")
    asyncio.run(engine.stop())


def test_one_writer_per_database(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    first = Store(db)
    with pytest.raises(
        StoreError, match=rf"in use by another asyncrpc server \(pid {os.getpid()}\)"
    ):
        Store(db)
    first.close()
    Store(db).close()  # free again once the holder is gone


def test_one_writer_per_database_file_whatever_its_name(tmp_path: Path) -> None:
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    real = real_dir / "s.db"
    (tmp_path / "link.db").symlink_to(real)
    (tmp_path / "dir-link").symlink_to(real_dir, target_is_directory=True)
    first = Store(str(real))
    for other in (tmp_path / "link.db", tmp_path / "dir-link" / "s.db"):
        with pytest.raises(StoreError) as refused:
            Store(str(other))
        message = str(refused.value)
        assert f"in use by another asyncrpc server (pid {os.getpid()})" in message
        assert str(real) in message
    first.close()
    second = Store(str(tmp_path / "link.db"))  # free again once the holder is gone
    with pytest.raises(StoreError, match="in use"):
        Store(str(real))
    second.close()


def test_the_database_and_its_files_are_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    engine = Engine(Store(str(db)))
    engine.handle(create("p"))
    for name in ("s.db", "s.db-wal", "s.db.lock"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    engine.store.close()


def test_the_store_keeps_its_database_locked_while_it_is_open(tmp_path: Path) -> None:
    """One lock for the store's life, not one per transaction: no other connection reads
    the database meanwhile, and the write-ahead log's index needs no shared -shm file."""
    db = tmp_path / "s.db"
    engine = Engine(Store(str(db)))
    engine.handle(create("p"))
    other = sqlite3.connect(db, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("SELECT COUNT(*) FROM log").fetchone()
    assert not (tmp_path / "s.db-shm").exists()
    engine.store.close()
    assert other.execute("SELECT COUNT(*) FROM log").fetchone() == (1,)
    other.close()


def test_a_database_another_connection_has_open_is_shared_as_sqlite_does(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    Store(str(db)).close()
    with contextlib.closing(sqlite3.connect(db)) as reader:
        reader.execute("PRAGMA journal_mode").fetchone()  # open, as a `sqlite3` shell leaves it
        engine = Engine(Store(str(db)))
        assert not engine.store.exclusive
        assert engine.handle(create("p")).status == 200
        assert reader.execute("SELECT COUNT(*) FROM log").fetchone() == (1,)
        engine.store.close()
    engine = Engine(Store(str(db)))
    assert engine.store.exclusive
    assert engine.handle(create("q")).status == 200
    engine.store.close()


def test_an_existing_world_readable_database_is_made_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    Store(str(db)).close()
    db.chmod(0o644)
    Store(str(db)).close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (DAMAGED_LOG_ROW, "log entry"),
        ("UPDATE snapshot SET state = x'00ff'", "snapshot"),
    ],
)
def test_a_damaged_database_is_refused(tmp_path: Path, sql: str, message: str) -> None:
    db = tmp_path / "s.db"
    damaged(db, sql)
    with pytest.raises(StoreError, match=message):
        Engine(Store(str(db)))


def test_a_format_2_database_with_a_plain_snapshot_is_read_and_upgraded(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    engine = Engine(Store(str(db), min_log=3))
    for i in range(4):
        engine.handle(create(f"p{i}"))
    engine.store.close()
    with sqlite3.connect(db) as connection:
        (compressed,) = connection.execute("SELECT state FROM snapshot").fetchone()
        connection.execute("UPDATE snapshot SET state = ?", (zlib.decompress(compressed),))
        connection.execute("UPDATE meta SET value = '2' WHERE key = 'format'")
    restarted = Engine(Store(str(db)))
    assert sorted(restarted.state.promises) == [f"p{i}" for i in range(4)]
    restarted.store.close()
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT value FROM meta").fetchone() == ("4",)


def test_healthz_is_503_once_the_store_failed(tmp_path: Path) -> None:
    engine = Engine(Store(str(tmp_path / "s.db"), connect=failing_connect))

    async def ask() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=ServerApp(engine)), base_url="http://127.0.0.1:8001"
        ) as http:
            healthy = await http.get("/healthz")
            engine.store._db.failing = True  # type: ignore[attr-defined]
            await http.post("/", content=create("lost"))
            return [healthy, await http.get("/healthz")]

    healthy, failing = asyncio.run(ask())
    assert healthy.status_code == 200
    assert failing.status_code == 503
    assert failing.json()["status"] == "failing" and "store failed" in failing.json()["error"]


# -- the HTTP fast lane's entry (Engine.answer): the same durability, history and 503s ------


def answered(engine: Engine, bodies: list[bytes], between: Any = None) -> list[Reply]:
    """``bodies`` through :meth:`Engine.answer` in one loop turn; each reply once delivered.

    ``between`` runs after they are applied, before their group commit (a timer's turn).
    """

    async def one_turn() -> list[Reply]:
        replies: list[Reply] = []
        for body in bodies:
            engine.answer(body, replies.append)
        if between is not None:
            between()
        async with asyncio.timeout(10):  # a reply never delivered fails the test, not hangs it
            while len(replies) < len(bodies):
                await asyncio.sleep(0)
        return replies

    return asyncio.run(one_turn())


def test_the_fast_lanes_answers_wait_for_their_commit_and_settled_promises_go_to_disk(
    tmp_path: Path,
) -> None:
    engine = Engine(Store(str(tmp_path / "s.db")))
    stream = engine.router.connect("g", "w")
    settle = envelope("promise.settle", id="done", state="resolved", value={"data": "1"})
    replies = answered(engine, [create("done"), create("open"), settle])
    assert [reply.status for reply in replies] == [200, 200, 200]
    assert engine.store.staged == 0  # answered only once committed
    assert "done" not in engine.state.promises and "open" in engine.state.promises
    stored = engine.store.history.promise("done")  # settled: the history answers for it
    assert stored is not None and stored.state == "resolved"
    assert not stream.queue.empty()  # the execute of "open" went out with the commit


def test_rows_a_failed_write_kept_from_the_table_wait_and_are_written_later(
    tmp_path: Path,
) -> None:
    """The settlement is committed (its log entry): a failed write of its row refuses nothing,
    and the timer tries the row again once the disk had time to recover."""
    db = str(tmp_path / "s.db")
    now = [1_000]
    engine = Engine(Store(db, connect=failing_connect), clock=lambda: now[0])
    settle = envelope("promise.settle", id="done", state="resolved", value={"data": "1"})
    assert engine.handle(create("done")).status == 200
    assert engine.handle(settle).status == 200
    history = engine.store.history
    assert history.unwritten == 1
    engine.store._db.failing = True  # type: ignore[attr-defined]
    engine.tick()
    assert history.unwritten == 1 and engine.failed is None
    assert msgspec.json.decode(engine.handle(get("done")).body)["data"]["promise"]["state"] == (
        "resolved"
    )
    engine.store._db.failing = False  # type: ignore[attr-defined]
    engine.tick()
    assert history.unwritten == 1, "the write was tried again before the retry time"
    now[0] += WRITE_RETRY_MS
    engine.tick()
    assert history.unwritten == 0 and history.count() == 1
    engine.store.close(write_rows=False)
    restarted = Engine(Store(db))
    assert restarted.state.history.unwritten == 0 and restarted.state.history.count() == 1
    restarted.store.close()


def test_a_failed_commit_answers_the_fast_lanes_held_requests_503(tmp_path: Path) -> None:
    engine = Engine(Store(str(tmp_path / "s.db"), connect=failing_connect))
    stream = engine.router.connect("g", "w")
    engine.store._db.failing = True  # type: ignore[attr-defined]
    replies = answered(engine, [create(f"lost{i}") for i in range(3)])
    assert [reply.status for reply in replies] == [503, 503, 503]
    answer = msgspec.json.decode(replies[0].body)
    assert answer["kind"] == "promise.create" and answer["head"]["corrId"] == "c"
    assert "disk I/O error" in (replies[0].detail or "")
    assert stream.queue.empty(), "an execute of an uncommitted promise went out"
    engine.store._db.failing = False  # type: ignore[attr-defined]
    assert engine.handle(get("lost0")).status == 404
    refused = engine.handle(create("later"))
    assert refused.status == 503 and "refuses changes" in (refused.detail or "")


def test_a_held_request_whose_entry_a_failed_timer_commit_took_is_answered_503(
    tmp_path: Path,
) -> None:
    engine = Engine(Store(str(tmp_path / "s.db"), connect=failing_connect))

    def failing_tick() -> None:
        assert engine.store.staged == 1
        engine.store._db.failing = True  # type: ignore[attr-defined]
        with pytest.raises(Exception, match="disk I/O error"):
            engine.tick()  # the timer's turn comes first
        engine.store._db.failing = False  # type: ignore[attr-defined]

    (reply,) = answered(engine, [create("raced")], between=failing_tick)
    assert reply.status == 503, reply
    assert "raced" not in engine.state.promises
