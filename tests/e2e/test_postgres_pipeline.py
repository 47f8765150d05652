"""The pipelined connection a resonate-pg process sends every statement down, against Postgres 18.

Many tasks share one connection: each gets its own answer, only once its
statement is committed; an error fails only its statement, with psycopg's class
for its SQLSTATE (the link tells a missing timer wrapper from a refusal by
class); notifications of the channels it listens on arrive between answers;
a lost connection fails what is in flight and the next statement opens a new one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg import errors

from asyncrpc.network.pg_pipeline import PipelinedSessions, numbered
from harness.postgres import ResonateCluster


@pytest.fixture(scope="module")
def dsn(resonate_cluster: ResonateCluster) -> str:
    url = resonate_cluster.database("pipeline")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS pipeline_rows (n int PRIMARY KEY)")
    return url


def test_placeholders_are_numbered_and_nothing_else_is_guessed() -> None:
    assert numbered("SELECT f(%s, %s)") == b"SELECT f($1, $2)"
    with pytest.raises(ValueError, match="only %s"):
        numbered("SELECT %(name)s")


def test_many_tasks_share_the_connection_and_each_gets_its_own_committed_answer(
    dsn: str,
) -> None:
    async def scenario() -> list[Any]:
        sessions = PipelinedSessions(dsn)
        try:

            async def one(n: int) -> Any:
                async with sessions.session() as conn:
                    cursor = await conn.execute(
                        "INSERT INTO pipeline_rows VALUES (%s) RETURNING n, n > %s, %s::text",
                        (n, 50, f"row {n}"),
                    )
                    row = await cursor.fetchone()
                # Answered only once committed: another connection sees the row already.
                with psycopg.connect(dsn, autocommit=True) as other:
                    seen = other.execute("SELECT count(*) FROM pipeline_rows WHERE n = %s", (n,))
                    assert seen.fetchone() == (1,)
                return row

            return await asyncio.gather(*(one(n) for n in range(100)))
        finally:
            await sessions.close()

    rows = asyncio.run(scenario())
    assert rows == [(n, n > 50, f"row {n}") for n in range(100)]


def test_an_error_fails_only_its_statement_with_the_class_of_its_sqlstate(dsn: str) -> None:
    async def scenario() -> list[Any]:
        sessions = PipelinedSessions(dsn)
        try:

            async def run(sql: str, *params: object) -> Any:
                async with sessions.session() as conn:
                    return await (await conn.execute(sql, params)).fetchall()

            return await asyncio.gather(
                run("SELECT 1"),
                run("SELECT 1 / %s", 0),
                run("SELECT asyncrpc_no_such_function()"),  # its preparation fails
                run("SELECT 2"),
                run("SELECT asyncrpc_no_such_function()"),  # prepared again, fails again
                return_exceptions=True,
            )
        finally:
            await sessions.close()

    first, divided, missing, second, again = asyncio.run(scenario())
    assert first == [(1,)] and second == [(2,)]
    assert isinstance(divided, errors.DivisionByZero)
    assert isinstance(missing, errors.UndefinedFunction)
    assert isinstance(again, errors.UndefinedFunction)


def test_notifications_arrive_and_a_lost_connection_is_replaced(dsn: str) -> None:
    async def scenario() -> tuple[list[tuple[str, str]], BaseException | None, Any]:
        sessions = PipelinedSessions(dsn)
        heard: list[tuple[str, str]] = []
        try:
            listening = await sessions.listen(["asyncrpc_test"], lambda c, p: heard.append((c, p)))
            with psycopg.connect(dsn, autocommit=True) as other:
                other.execute("SELECT pg_notify('asyncrpc_test', 'hello')")
                other.execute("SELECT pg_notify('elsewhere', 'not for us')")
                for _ in range(100):
                    if heard:
                        break
                    await asyncio.sleep(0.05)
                backend = (await listening.execute("SELECT pg_backend_pid()"))[0][0]
                other.execute("SELECT pg_terminate_backend(%s)", (backend,))
            await asyncio.wait_for(listening.closed.wait(), 10)
            lost = None
            try:
                await listening.execute("SELECT 1")
            except psycopg.OperationalError as exc:
                lost = exc
            async with sessions.session() as conn:  # a new connection
                answer = await (await conn.execute("SELECT 3")).fetchone()
            return heard, lost, answer
        finally:
            await sessions.close()

    heard, lost, answer = asyncio.run(scenario())
    assert heard == [("asyncrpc_test", "hello")]
    assert isinstance(lost, psycopg.OperationalError)
    assert answer == (3,)
