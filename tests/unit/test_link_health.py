"""Noticing a dead link: connection settings, answers on time, the resonate-pg link's health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict
from resonate.error import ConnectorError
from resonate.retry import ExponentialBackoff
from resonate_pg.connection import DEQUEUE_EXECUTE_SQL

from asyncrpc.network.health import STALE_AFTER_S
from asyncrpc.network.postgres_link import (
    COLLECT_SQL,
    RPC_SQL,
    TIMER_DRIVERS,
    WRAPPED_RPC_SQL,
    WRAPPED_TIMERS_SQL,
    PostgresLink,
    Queue,
)
from asyncrpc.postgres.schema import RPC, STEP_FUNCTIONS_SQL, TIMER_DRIVER, TIMER_DRIVER_SQL
from asyncrpc.postgres.schema import RPC_SQL as STEP_RPC_SQL
from asyncrpc.postgres.tuning import STEP_SQL
from asyncrpc.runtime.keepalive import (
    NOTICE_WITHIN_S,
    POSTGRES_LIVENESS,
    USER_TIMEOUT_S,
    keepalive_socket,
    postgres_conninfo,
)
from asyncrpc.runtime.on_time import within
from tests.support import ROOT
from tests.support.clocks import Clock


def test_every_postgres_connection_gets_keepalives_and_timeouts_the_url_can_override() -> None:
    given = conninfo_to_dict(
        postgres_conninfo(
            "postgresql://u:pw@db.internal:5432/app?connect_timeout=9&sslmode=require"
        )
    )
    assert given["connect_timeout"] == "9"  # the URL's own value wins
    assert (given["host"], given["password"], given["sslmode"]) == ("db.internal", "pw", "require")
    for key, value in POSTGRES_LIVENESS.items():
        if key != "connect_timeout":
            assert given[key] == value, key
    assert NOTICE_WITHIN_S <= 10  # a dead link is an error within ten seconds


def test_the_poll_streams_socket_probes_and_gives_up_on_unacknowledged_data() -> None:
    info = socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)[0]
    with keepalive_socket(info) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            timeout = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
            assert timeout == USER_TIMEOUT_S * 1000


def test_within_answers_on_time_even_when_the_awaitable_is_slow_to_stop() -> None:
    asyncio.run(_within_answers_on_time())


async def _within_answers_on_time() -> None:
    unwound = asyncio.Event()

    async def stubborn() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(1.0)  # as psycopg cancelling a query on a dead link
            unwound.set()
            raise
        return "late"

    began = time.monotonic()
    with pytest.raises(TimeoutError):
        await within(stubborn(), 0.2)
    assert time.monotonic() - began < 0.5  # not 0.2 + the second it takes to unwind
    await asyncio.wait_for(unwound.wait(), 3)  # it was cancelled, and finished on its own


def test_within_passes_results_and_errors_through() -> None:
    asyncio.run(_within_passes_through())


async def _within_passes_through() -> None:
    async def fine() -> int:
        return 3

    async def broken() -> int:
        raise ValueError("no")

    assert await within(fine(), 1) == 3
    with pytest.raises(ValueError, match="no"):
        await within(broken(), 1)


# -- the resonate-pg link's health and timers, on sessions faked in memory -----------------


class Cursor:
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    async def fetchall(self) -> list[Any]:
        return self.rows

    async def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None


class Conn:
    def __init__(self, sessions: FakeSessions) -> None:
        self.sessions = sessions

    async def execute(self, query: str, params: Any = None) -> Cursor:
        self.sessions.executed.append(query)
        failure = self.sessions.failures.get(query) or self.sessions.down
        if failure is not None:
            raise failure
        return Cursor(self.sessions.rows.get(query, []))


class FakeSessions:
    """resonate-pg's ``PgSessions`` in memory: statements fail as the test says."""

    def __init__(self) -> None:
        self.executed: list[str] = []
        self.failures: dict[str, Exception] = {}
        self.rows: dict[str, list[Any]] = {}
        self.down: Exception | None = None

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Conn]:
        yield Conn(self)

    async def execute(self, query: str, params: Any = None) -> list[Any]:
        """A statement straight down the connection (requests go so)."""
        cursor = await Conn(self).execute(query, params)
        return await cursor.fetchall()

    async def dedicated(self) -> Conn:
        return Conn(self)

    async def close(self) -> None:
        pass


def link(sessions: FakeSessions, clock: Clock) -> PostgresLink:
    return PostgresLink(
        "postgresql://asyncrpc_b:secret@db.internal:5432/app",
        pid="b-1",
        group="service-b",
        backoff=ExponentialBackoff(initial=0.01, max_delay=0.01),
        clock=clock,
        sessions=sessions,  # type: ignore[arg-type]
    )


def test_health_says_why_the_database_is_not_reached_and_when_it_went_silent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    asyncio.run(_health(caplog))


async def _health(caplog: pytest.LogCaptureFixture) -> None:
    sessions, clock = FakeSessions(), Clock()
    pg = link(sessions, clock)
    assert not pg.health().ok and "no answer yet" in pg.health().reason

    await pg._drain()
    assert pg.health().ok and pg.connected.is_set()

    clock.now += STALE_AFTER_S + 1  # drains hang on a dead link: none went through since
    health = pg.health()
    assert not health.ok and f"for {STALE_AFTER_S + 1:.0f}s" in health.reason
    assert "secret" not in health.reason  # the URL is shown without its password

    sessions.down = errors.OperationalError("could not receive data from server: timed out")
    with caplog.at_level(logging.WARNING), pytest.raises(errors.OperationalError):
        await pg._drain()
    assert "timed out" in pg.health().reason and not pg.connected.is_set()
    assert "lost the database at" in caplog.text

    sessions.down = None
    clock.now += 7
    with caplog.at_level(logging.WARNING):
        await pg._drain()
    assert pg.health().ok
    assert "answers again (after 7s)" in caplog.text


def test_timers_are_fired_by_the_wrapper_else_by_resonate_else_left_to_pg_cron(
    caplog: pytest.LogCaptureFixture,
) -> None:
    asyncio.run(_timers(caplog))


async def _timers(caplog: pytest.LogCaptureFixture) -> None:
    sessions, clock = FakeSessions(), Clock()
    pg = link(sessions, clock)
    await pg._drain()
    assert not any("process_timeouts" in sql for sql in sessions.executed)  # the timer loop's job
    await pg._fire_timers()
    assert sessions.executed[-1] == WRAPPED_TIMERS_SQL
    assert (
        pg.timers == "this process (asyncrpc.process_timeouts()), a backstop to the elected driver"
    )
    pg.driving = True
    assert pg.timers == "this process (asyncrpc.process_timeouts()), the elected driver"

    sessions.failures[WRAPPED_TIMERS_SQL] = errors.UndefinedFunction("no such function")
    await pg._fire_timers()
    assert sessions.executed[-1] == TIMER_DRIVERS[1]
    assert pg.timers is not None
    assert pg.timers.startswith(f"this process ({TIMER_DRIVERS[1].removeprefix('SELECT ')})")

    sessions.failures[TIMER_DRIVERS[1]] = errors.InsufficientPrivilege("permission denied")
    with caplog.at_level(logging.WARNING):
        await pg._fire_timers()
        await pg._fire_timers()
    assert pg.timers is not None and pg.timers.startswith("not this process")
    assert caplog.text.count("may not fire timers") == 1
    await pg._drain()
    assert pg.health().ok  # a refusal is not an unreachable database

    # An unreachable database is not a refusal: the next round tries the same driver again.
    unreachable = FakeSessions()
    unreachable.down = errors.OperationalError("server closed the connection")
    again = link(unreachable, clock)
    with pytest.raises(errors.OperationalError):
        await again._fire_timers()
    assert again.timers is not None and "asyncrpc.process_timeouts()" in again.timers


def test_requests_go_to_the_steps_entry_point_else_to_resonate_rpc(
    caplog: pytest.LogCaptureFixture,
) -> None:
    asyncio.run(_requests(caplog))


async def _requests(caplog: pytest.LogCaptureFixture) -> None:
    sessions, clock = FakeSessions(), Clock()
    sessions.rows = {WRAPPED_RPC_SQL: [("ours",)], RPC_SQL: [("resonate's",)]}
    pg = link(sessions, clock)
    assert await pg.send("{}") == "ours"

    # A database without the step's function (or a role refused it): resonate_rpc, from then on.
    sessions.failures[WRAPPED_RPC_SQL] = errors.UndefinedFunction("no such function")
    with caplog.at_level(logging.INFO):
        assert await pg.send("{}") == "resonate's"
        assert await pg.send("{}") == "resonate's"
    assert sessions.executed[-3:] == [WRAPPED_RPC_SQL, RPC_SQL, RPC_SQL]
    assert caplog.text.count("requests go to resonate_rpc") == 1

    refused = link(sessions, clock)
    sessions.failures[WRAPPED_RPC_SQL] = errors.InsufficientPrivilege("permission denied")
    assert await refused.send("{}") == "resonate's"

    # A refusal of resonate_rpc itself is the request's failure, as the connector's.
    sessions.failures[RPC_SQL] = errors.InsufficientPrivilege("permission denied")
    with pytest.raises(ConnectorError) as failed:
        await refused.send("{}")
    assert isinstance(failed.value.__cause__, errors.InsufficientPrivilege)


def test_the_step_creates_the_entry_point_the_link_calls() -> None:
    assert f"SELECT {RPC.removesuffix('(text)')}(%s)" == WRAPPED_RPC_SQL
    assert "SECURITY DEFINER" in STEP_RPC_SQL
    assert f"GRANT EXECUTE ON FUNCTION {RPC} TO resonate_worker" in STEP_RPC_SQL


def test_the_elected_driver_applies_the_retention_in_batches_and_stops_once_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    asyncio.run(_retention(caplog))


async def _retention(caplog: pytest.LogCaptureFixture) -> None:
    sessions = FakeSessions()
    pg = link(sessions, Clock())
    assert await pg._collect() == 0
    assert sessions.executed == [COLLECT_SQL]
    sessions.failures[COLLECT_SQL] = errors.InsufficientPrivilege("permission denied")
    with caplog.at_level(logging.WARNING):
        assert await pg._collect() == 0
        assert await pg._collect() == 0
    assert sessions.executed == [COLLECT_SQL, COLLECT_SQL]  # refused once, then left alone
    assert caplog.text.count("asyncrpc.collect() refused") == 1


def test_the_link_calls_the_wrapper_the_schema_step_creates() -> None:
    assert f"SELECT {TIMER_DRIVER}" == WRAPPED_TIMERS_SQL
    assert "SECURITY DEFINER" in TIMER_DRIVER_SQL
    assert f"GRANT EXECUTE ON FUNCTION {TIMER_DRIVER} TO resonate_worker" in TIMER_DRIVER_SQL


def test_the_step_lets_any_worker_apply_the_retention_the_link_calls() -> None:
    assert "FUNCTION asyncrpc.collect(p_limit int)" in STEP_SQL
    assert COLLECT_SQL == "SELECT asyncrpc.collect(%s)"
    assert "GRANT EXECUTE ON FUNCTION asyncrpc.collect(int) TO resonate_worker" in STEP_SQL


def test_deploy_md_shows_the_step_functions_as_the_schema_step_creates_them() -> None:
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    assert STEP_FUNCTIONS_SQL.strip() in deploy


def test_a_drained_messages_task_starts_in_the_drains_own_turn() -> None:
    """The SDK's task for a drained ``execute`` runs at once, before the drain returns: its
    acquire leaves in that turn of the event loop, not the next."""

    async def scenario() -> list[str]:
        sessions = FakeSessions()
        sessions.rows[DEQUEUE_EXECUTE_SQL] = [("task-1", 3)]
        pg = link(sessions, Clock())
        started: list[str] = []

        async def work(message: str) -> None:
            started.append(message)

        tasks: list[asyncio.Task[None]] = []
        pg.recv(lambda message: tasks.append(asyncio.get_running_loop().create_task(work(message))))
        await pg._drain(frozenset({Queue.OWN_EXECUTE}))
        handed_in_turn = list(started)
        await asyncio.gather(*tasks)
        assert asyncio.get_running_loop().get_task_factory() is None  # the loop's own again
        return handed_in_turn

    handed = asyncio.run(scenario())
    assert len(handed) == 1 and "task-1" in handed[0]
