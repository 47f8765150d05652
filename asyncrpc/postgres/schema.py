"""Resonate's schema for Postgres (resonate.sql): where it comes from, and applying it.

resonate.sql is not part of this project: it is Resonate's server as one SQL
file, published with resonate-pg. A user names it with ``--schema FILE`` or
the environment variable ``ASYNCRPC_RESONATE_SQL``; without either the error
says where to get it.

The schema step adds three functions of this project's own, all ``SECURITY DEFINER``
and granted to ``resonate_worker``:

- ``asyncrpc.process_timeouts()`` (:data:`TIMER_DRIVER_SQL`), a wrapper of
  ``resonate.process_timeouts()``. resonate.sql grants its worker role the wire
  entry points only, and ``process_timeouts()`` is not ``SECURITY DEFINER``, so
  a least-privilege role cannot fire timers and, without pg_cron, durable
  sleeps, retries and lease expiries never happen. With the wrapper every
  process (each under its own role, a member of ``resonate_worker``) fires them
  as it drains its messages.
- ``asyncrpc.rpc(text)`` (:data:`RPC_SQL`), ``resonate.resonate_rpc`` with
  ``preload`` on a ``task.acquire``: the settled promises that resumed the task
  (resonate.sql keeps them in ``task_resumes`` until the acquire). resonate.sql
  answers ``preload: []``, so the SDK's replay of a resumed step asks again for
  the child it awaited (a fenced create answered from the store): one request
  per resume, two of an await chain's sixteen. docs/protocol.md ("preload")
  says how this differs from resonate.sql; a database without the function
  gets resonate.sql's own answer (:mod:`asyncrpc.network.postgres_link`).
- ``asyncrpc.dequeue_acquire(...)`` (:data:`DEQUEUE_ACQUIRE_FUNCTION_SQL`),
  ``resonate.dequeue_execute`` that also acquires the task of each of the first
  ``p_leases`` rows for the process that dequeues (its pid and ttl), in the
  same transaction, and returns beside each row the ``data`` that
  ``asyncrpc.rpc`` answers that process's ``task.acquire`` of the row's task
  and version with (``task``, ``promise``, ``preload``), or NULL where the
  acquire fails (the row is then an ordinary execute message). A node keeps
  the answer and gives it to the SDK's acquire that follows, so a step costs
  one statement less (:mod:`asyncrpc.network.postgres_link`, "leases in the
  dequeue"). Each acquire runs in a subtransaction: one that fails (a lock
  cycle with a settle of the same promise, detected as a deadlock) takes back
  its own work only, never the dequeue.
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


#: The request entry point the processes call (:mod:`asyncrpc.network.postgres_link`).
RPC = "asyncrpc.rpc(text)"

RPC_SQL = f"""
CREATE OR REPLACE FUNCTION {RPC.replace("(text)", "(req text)")} RETURNS text
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = resonate, pg_temp AS $$
DECLARE
  body jsonb := req::jsonb;
  resumed text[];
  answer jsonb;
BEGIN
  -- Read before the acquire, which deletes them: promises that are settled, which never change.
  IF body->>'kind' = 'task.acquire' THEN
    SELECT array_agg(awaited_id) INTO resumed
      FROM resonate.task_resumes WHERE task_id = body->'data'->>'id';
  END IF;
  answer := resonate.resonate_rpc(body);
  IF resumed IS NOT NULL AND answer->'head'->>'status' = '200' THEN
    answer := jsonb_set(answer, '{{data,preload}}', COALESCE(
      (SELECT jsonb_agg(resonate._promise_json_raw(p) ORDER BY p.id)
         FROM resonate.promises p WHERE p.id = ANY (resumed) AND p.state <> 'pending'),
      '[]'::jsonb));
  END IF;
  RETURN answer::text;
END $$;
REVOKE ALL ON FUNCTION {RPC} FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {RPC} TO resonate_worker;
"""

#: The dequeue that takes leases (:mod:`asyncrpc.network.postgres_link`).
DEQUEUE_ACQUIRE = "asyncrpc.dequeue_acquire(text, int, text, bigint, int)"

DEQUEUE_ACQUIRE_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION asyncrpc.dequeue_acquire(
    p_target text, p_limit int, p_pid text, p_ttl bigint, p_leases int)
  RETURNS TABLE(task text, task_version int, acquired text)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = resonate, pg_temp AS $$
DECLARE
  row record;
  taken int := 0;
  resumed text[];
  r jsonb;
BEGIN
  FOR row IN SELECT d.task_id, d.version FROM resonate.dequeue_execute(p_target, p_limit) d LOOP
    task := row.task_id;
    task_version := row.version;
    acquired := NULL;
    IF taken < p_leases THEN
      BEGIN
        -- As asyncrpc.rpc: read before the acquire, which deletes them.
        SELECT array_agg(tr.awaited_id) INTO resumed
          FROM resonate.task_resumes tr WHERE tr.task_id = row.task_id;
        r := resonate.task_acquire(row.task_id, row.version, p_pid, p_ttl,
               (extract(epoch from clock_timestamp()) * 1000)::bigint);
        IF (r->>'status')::int = 200 THEN
          taken := taken + 1;
          acquired := jsonb_build_object('task', r->'task', 'promise', r->'promise',
            'preload', COALESCE(
              (SELECT jsonb_agg(resonate._promise_json_raw(p) ORDER BY p.id)
                 FROM resonate.promises p WHERE p.id = ANY (resumed) AND p.state <> 'pending'),
              '[]'::jsonb))::text;
        END IF;
      EXCEPTION WHEN OTHERS THEN
        acquired := NULL;
      END;
    END IF;
    RETURN NEXT;
  END LOOP;
END $$;
REVOKE ALL ON FUNCTION {DEQUEUE_ACQUIRE} FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {DEQUEUE_ACQUIRE}
  TO resonate_worker;
"""

#: Everything the schema step adds after resonate.sql, as one script.
STEP_FUNCTIONS_SQL = TIMER_DRIVER_SQL + RPC_SQL + DEQUEUE_ACQUIRE_FUNCTION_SQL


def apply_schema(dsn: str, schema: Path) -> None:
    """The schema step: resonate.sql from ``schema``, then its functions, in one transaction."""
    apply_sql(dsn, schema.read_text() + "\n" + STEP_FUNCTIONS_SQL)


def add_timer_driver(dsn: str) -> None:
    """Create (or replace) the step's functions in a database that already has resonate.sql."""
    apply_sql(dsn, STEP_FUNCTIONS_SQL)


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
