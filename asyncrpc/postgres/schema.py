"""Resonate's schema for Postgres (resonate.sql): where it comes from, and applying it.

resonate.sql is not part of this project: it is Resonate's server as one SQL
file, published with resonate-pg. A user names it with ``--schema FILE`` or
the environment variable ``ASYNCRPC_RESONATE_SQL``; without either the error
says where to get it.

The schema step adds one thing of this project's own (:data:`TIMER_DRIVER_SQL`):
``asyncrpc.process_timeouts()``, a ``SECURITY DEFINER`` wrapper of
``resonate.process_timeouts()`` granted to ``resonate_worker``. resonate.sql
grants its worker role the wire entry points only, and ``process_timeouts()``
is not ``SECURITY DEFINER``, so a least-privilege role cannot fire timers and,
without pg_cron, durable sleeps, retries and lease expiries never happen. With
the wrapper every process (each under its own role, a member of
``resonate_worker``) fires them as it drains its messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from asyncrpc.runtime.keepalive import postgres_conninfo

#: The environment variable naming resonate.sql; the project never hard-codes its path.
RESONATE_SQL_ENV = "ASYNCRPC_RESONATE_SQL"

WHERE_IT_COMES_FROM = (
    "resonate.sql is Resonate's server as one SQL file, from the resonate-pg repository "
    "(resonatehq/resonate-pg on GitHub): download it and pass --schema PATH, "
    f"or set {RESONATE_SQL_ENV}=PATH."
)


class SchemaUnavailable(RuntimeError):
    """resonate.sql cannot be had; the message says what is missing and where it comes from."""


def resonate_sql_path(env: Mapping[str, str], option: str | Path | None = None) -> Path:
    """The schema file: ``option`` (``--schema``), else ``ASYNCRPC_RESONATE_SQL``."""
    if option:
        value, what = str(option), "--schema"
    else:
        value, what = env.get(RESONATE_SQL_ENV, ""), RESONATE_SQL_ENV
    if not value:
        raise SchemaUnavailable(
            f"no schema: neither --schema nor {RESONATE_SQL_ENV} is given. {WHERE_IT_COMES_FROM}"
        )
    path = Path(value).expanduser()
    if not path.is_file():
        raise SchemaUnavailable(f"{what} {value}: no such file. {WHERE_IT_COMES_FROM}")
    return path.resolve()


#: The wrapper's name, as the processes call it (:mod:`asyncrpc.network.postgres_link`).
TIMER_DRIVER = "asyncrpc.process_timeouts()"

TIMER_DRIVER_SQL = f"""
CREATE SCHEMA IF NOT EXISTS asyncrpc;
REVOKE ALL ON SCHEMA asyncrpc FROM PUBLIC;
CREATE OR REPLACE FUNCTION {TIMER_DRIVER} RETURNS int
  LANGUAGE sql SECURITY DEFINER SET search_path = resonate, pg_temp
  AS $$ SELECT resonate.process_timeouts() $$;
REVOKE ALL ON FUNCTION {TIMER_DRIVER} FROM PUBLIC;
GRANT USAGE ON SCHEMA asyncrpc TO resonate_worker;
GRANT EXECUTE ON FUNCTION {TIMER_DRIVER} TO resonate_worker;
"""


def apply_schema(dsn: str, schema: Path) -> None:
    """The schema step: resonate.sql from ``schema``, then the timer driver, in one transaction."""
    apply_sql(dsn, schema.read_text() + "\n" + TIMER_DRIVER_SQL)


def add_timer_driver(dsn: str) -> None:
    """Create (or replace) the timer driver in a database that already has resonate.sql."""
    apply_sql(dsn, TIMER_DRIVER_SQL)


def apply_sql(dsn: str, sql: str) -> None:
    """Run a whole SQL script (several statements, no parameters) in one transaction."""
    import psycopg

    with psycopg.connect(postgres_conninfo(dsn), autocommit=False) as conn:
        conn.execute(sql)  # a script, not a literal


def has_schema(dsn: str) -> bool:
    """Whether resonate.sql has been applied to the database at ``dsn``."""
    import psycopg

    with psycopg.connect(postgres_conninfo(dsn), autocommit=True) as conn:
        row = conn.execute("SELECT to_regprocedure('resonate.resonate_rpc(jsonb)')").fetchone()
    return row is not None and row[0] is not None
