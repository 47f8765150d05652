"""The readers of a resonate-pg database keep one connection, and outlive its backend.

A restart of Postgres ends every backend: the connection a reader kept from an
earlier read is dead, though nothing has told the reader yet. Its next read must
still answer what the database holds (a 404 for a promise that does not exist),
not a 503 for a server that answers again; a database that stays out of reach is
still a 503.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from asyncrpc.protocol.errors import ServerUnavailable
from asyncrpc.readers.postgres import AsyncPostgresTables, PostgresTables
from harness.isolation import free_port
from harness.postgres import ResonateCluster


@pytest.fixture(scope="module")
def dsn(resonate_cluster: ResonateCluster) -> str:
    return resonate_cluster.database("reader")


def end_other_backends(dsn: str) -> int:
    """End every other backend of the database, as a restart of Postgres would; how many."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        ended = conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert ended is not None
    return int(ended[0])


def test_a_read_after_the_kept_connection_died_reconnects_and_answers(dsn: str) -> None:
    tables = PostgresTables(dsn, None, 10.0)
    try:
        assert tables.ask("promise.get", id="never-created").status == 404
        assert end_other_backends(dsn) == 1
        assert tables.ask("promise.get", id="never-created").status == 404
    finally:
        tables.close()


def test_the_async_reader_reconnects_the_same_way(dsn: str) -> None:
    async def scenario() -> tuple[int, int, int]:
        tables = AsyncPostgresTables(dsn, None, 10.0)
        try:
            before = (await tables.ask("promise.get", id="never-created")).status
            ended = await asyncio.to_thread(end_other_backends, dsn)
            after = (await tables.ask("promise.get", id="never-created")).status
            return before, ended, after
        finally:
            await tables.aclose()

    assert asyncio.run(scenario()) == (404, 1, 404)


def test_a_database_out_of_reach_is_still_unavailable() -> None:
    # A free port, so nothing listens: the first read opens no connection, and is not retried.
    tables = PostgresTables(f"postgresql://nobody@127.0.0.1:{free_port()}/none", None, 1.0)
    with pytest.raises(ServerUnavailable):
        tables.ask("promise.get", id="x")
