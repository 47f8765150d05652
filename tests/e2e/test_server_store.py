"""The store's rules that take a process: a second server on one database, a damaged log
at start-up, and the snapshot writer the store forks."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import httpx

from asyncrpc.protocol.states import PromiseState
from asyncrpc.readers.server_reader import ServerReader
from asyncrpc.server.engine import Engine, wall_clock_ms
from asyncrpc.server.store import Store
from harness.disk import fill
from harness.isolation import free_port
from harness.processes import ASYNCRPC, Processes
from tests.support.forking import FORKS_BESIDE_LIBUV_WORKERS
from tests.support.server import DAMAGED_LOG_ROW, create, damaged, envelope
from tests.unit.test_server_history import settled_promises


def serve_on(db: Path) -> subprocess.CompletedProcess[str]:
    """`asyncrpc server --db DB` on a free port, expected to exit at once."""
    return subprocess.run(
        [*ASYNCRPC, "server", "--db", str(db), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
    )


def get(promise_id: str) -> bytes:
    return envelope("promise.get", id=promise_id)


def test_a_second_server_on_the_same_database_exits_2_naming_the_first(
    procs: Processes, tmp_path: Path
) -> None:
    db = tmp_path / "server.db"
    first, _ = procs.start_server(db=db)
    second = serve_on(db)
    assert second.returncode == 2
    assert f"in use by another asyncrpc server (pid {first.pid})" in second.stderr
    assert "Traceback" not in second.stderr
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_a_second_server_on_a_link_to_the_database_exits_2_and_the_first_serves_on(
    procs: Processes, tmp_path: Path
) -> None:
    db = tmp_path / "server.db"
    first, url = procs.start_server(db=db)
    link = tmp_path / "link.db"
    link.symlink_to(db)
    second = serve_on(link)
    assert second.returncode == 2, second.stderr
    assert f"in use by another asyncrpc server (pid {first.pid})" in second.stderr
    assert "Traceback" not in second.stderr
    for i in range(3):
        answer = httpx.post(url, content=create(f"after{i}"), timeout=10)
        assert answer.status_code == 200, answer.text
    assert first.alive()


def test_a_full_disk_refuses_changes_then_serves_again_with_nothing_lost(
    small_disk: Path, procs: Processes
) -> None:
    """On a real 2 MB disk: filled, the server answers 503s that say why and keeps running;
    given space, it serves again by itself, keeps its write-ahead log small, and has lost
    nothing it acknowledged, across a restart too."""
    db = small_disk / "server.db"
    server, url = procs.start_server(db=db)
    client = httpx.Client(base_url=url, timeout=10)
    acknowledged: list[str] = []
    for i in range(20):
        assert client.post("/", content=create(f"before{i}")).status_code == 200
        acknowledged.append(f"before{i}")
    filler = fill(small_disk)
    refused = None
    for i in range(5000):
        answer = client.post("/", content=create(f"p{i}"))
        if answer.status_code != 200:
            refused = answer
            break
        acknowledged.append(f"p{i}")
    assert refused is not None, "the disk never filled"
    assert refused.status_code == 503, refused.text
    envelope = refused.json()
    assert envelope["kind"] == "promise.create" and envelope["head"]["corrId"] == "c"
    assert envelope["head"]["status"] == 503
    assert "cannot write its database" in refused.headers["x-asyncrpc-error"]
    assert "full" in refused.headers["x-asyncrpc-error"]
    time.sleep(1.5)  # a retry or two
    assert server.alive()
    # Truncating the write-ahead log gave some room back: take that too.
    fillers = [filler, fill(small_disk)]
    assert client.post("/", content=create("still-full")).status_code == 503
    assert client.post("/", content=get(acknowledged[-1])).status_code == 200

    for filler in fillers:
        filler.unlink()
    deadline = time.monotonic() + 10
    while (answer := client.post("/", content=create("after"))).status_code == 503:
        assert time.monotonic() < deadline, "the server did not take changes again"
        time.sleep(0.1)
    assert answer.status_code == 200, answer.text
    for i in range(400):  # more than the disk held the first time round
        assert client.post("/", content=create(f"more{i}")).status_code == 200
    wal = small_disk / "server.db-wal"
    assert wal.stat().st_size <= 1024 * 1024, "the write-ahead log keeps growing"
    assert server.alive()
    server.stop()
    _, url = procs.start_server(db=db)
    with httpx.Client(base_url=url, timeout=10) as restarted:
        for promise_id in [*acknowledged, "after", "more399"]:
            answer = restarted.post("/", content=get(promise_id))
            assert answer.status_code == 200, promise_id
        assert restarted.post("/", content=get("still-full")).status_code == 404
    client.close()


def test_a_damaged_log_row_is_an_exit_2(tmp_path: Path) -> None:
    db = tmp_path / "server.db"
    damaged(db, DAMAGED_LOG_ROW)
    result = serve_on(db)
    assert result.returncode == 2
    assert "is damaged" in result.stderr and "Traceback" not in result.stderr


@FORKS_BESIDE_LIBUV_WORKERS
def test_a_snapshot_written_by_a_forked_writer_compacts_the_log(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    engine = Engine(Store(db, min_log=20), background_snapshots=True)
    for i in range(30):
        engine.handle(create(f"p{i}"))
    assert engine.store.snapshotting, "no writer was forked once the log was long"
    engine.handle(create("after-the-fork"))
    deadline = time.monotonic() + 20
    while engine.store.snapshotting or engine.store._trim_to:
        assert time.monotonic() < deadline, "the snapshot writer never finished"
        engine.tick()
        time.sleep(0.01)
    engine.store.close()  # the store holds the database's lock while it is open
    with contextlib.closing(sqlite3.connect(db)) as connection:
        (covered,) = connection.execute("SELECT seq FROM snapshot").fetchone()
        (oldest,) = connection.execute("SELECT MIN(seq) FROM log").fetchone()
    assert covered >= 20 and oldest == covered + 1
    restarted = Engine(Store(db))
    assert sorted(restarted.state.promises) == sorted(engine.state.promises)


def test_a_server_with_many_stored_promises_restarts_after_kill_9_with_all_of_them(
    procs: Processes, tmp_path: Path
) -> None:
    db = tmp_path / "server.db"
    store = Store(str(db))
    # Settled an hour or so ago: within the server's default retention (7 days).
    store.import_settled(settled_promises(50_000, wall_clock_ms()))
    store.close()
    server = procs.spawn_server(db)
    server.wait()
    reader = ServerReader(server.url)
    root = "h0008000"
    reader_answer = reader.get(f"{root}.1")
    assert reader_answer is not None and reader_answer.state == PromiseState.RESOLVED
    with httpx.Client(base_url=server.url, timeout=30) as client:
        created = client.post("/", content=create("in-flight"))
        assert created.status_code == 200
    server.process.kill(signal.SIGKILL)
    restarted = procs.spawn_server(db, server.port)
    ready_s = restarted.wait()
    assert ready_s < 10, f"a restart with 50,000 stored promises took {ready_s:.1f}s to be ready"
    assert [record.id for record in reader.search(tags={"resonate:origin": root})] == [
        root,
        f"{root}.1",
        f"{root}.2",
    ]
    in_flight = reader.get("in-flight")
    assert in_flight is not None and in_flight.state == PromiseState.PENDING
    health = httpx.get(f"{restarted.url}/healthz", timeout=10).json()
    assert health["promises"] == 50_001
    reader.close()
