"""The step asyncrpc runs on a database after resonate.sql: a timer scan on its index, retention.

resonate.sql is Resonate's and is applied as published. Two things a
long-running database needs are added beside it, and :data:`STEP_SQL` is all
of it (docs/deploy.md prints the same text, and a test checks that it does):

- **The timer scan uses its index.** resonate.sql pins ``search_path`` on
  every function in its schema, and Postgres never inlines a SQL function
  that carries its own settings. ``_promise_timed(promises)`` in the timer
  scan of ``process_promise_timeouts`` is then called once per row of
  ``resonate.promises``: every ``process_timeouts()`` reads the whole table,
  settled history included, and costs more the longer the database lives.
  Without the pin it is inlined into its caller, whose own ``search_path``
  is pinned, and ``idx_promises_timeout_at`` answers the scan.
- **Retention.** ``resonate.gc(settled_before, limit)`` deletes settled
  invocations but nothing calls it. The step keeps the retention in the
  database (``asyncrpc.retention``: one row, milliseconds, NULL for
  forever) and adds ``asyncrpc.collect(limit)``, which runs ``gc`` for that
  retention. The process that drives the timers calls it every 30 s
  (:mod:`asyncrpc.network.postgres_link`).

Every statement is idempotent: the step runs on every preparation, and again
after resonate.sql is applied again (which pins the search path again). A
preparation also creates the timer wrapper (:func:`~asyncrpc.postgres.schema.add_timer_driver`)
first: a database someone else runs needs it as much as a local one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asyncrpc.postgres.schema import (
    STEP_FUNCTIONS_SQL,
    add_timer_driver,
    apply_schema,
    has_schema,
)
from asyncrpc.runtime.keepalive import postgres_conninfo

#: What a database prepared by asyncrpc keeps when no retention is asked for: as `asyncrpc server`.
DEFAULT_RETAIN_MS = 7 * 86_400_000

STEP_SQL = """\
-- The timer scan on its index: without its pinned search_path, _promise_timed is inlined.
ALTER FUNCTION resonate._promise_timed(resonate.promises) RESET search_path;

-- Retention: settled invocations older than retain_ms go (NULL keeps them forever).
CREATE SCHEMA IF NOT EXISTS asyncrpc;
CREATE TABLE IF NOT EXISTS asyncrpc.retention (
  only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  retain_ms bigint CHECK (retain_ms > 0)
);
INSERT INTO asyncrpc.retention (retain_ms) VALUES (604800000) ON CONFLICT DO NOTHING;
CREATE OR REPLACE FUNCTION asyncrpc.collect(p_limit int) RETURNS bigint
  LANGUAGE sql SECURITY DEFINER SET search_path = resonate, pg_temp AS $$
  SELECT COALESCE((
    SELECT resonate.gc((extract(epoch FROM clock_timestamp()) * 1000)::bigint - retain_ms, p_limit)
    FROM asyncrpc.retention WHERE retain_ms IS NOT NULL), 0);
$$;
REVOKE ALL ON FUNCTION asyncrpc.collect(int) FROM PUBLIC;
GRANT USAGE ON SCHEMA asyncrpc TO resonate_worker;
GRANT EXECUTE ON FUNCTION asyncrpc.collect(int) TO resonate_worker;
"""

SET_RETENTION_SQL = "UPDATE asyncrpc.retention SET retain_ms = %s"
READ_RETENTION_SQL = "SELECT retain_ms FROM asyncrpc.retention"


@dataclass(frozen=True)
class Retention:
    """How long a settled invocation stays in the database: milliseconds, or None for forever."""

    ms: int | None

    def describe(self) -> str:
        if self.ms is None:
            return "forever"
        for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
            if self.ms % size == 0:
                return f"{self.ms // size}{unit}"
        return f"{self.ms}ms"


def fingerprint(retention: Retention | None) -> str:
    """What a data directory records once the step ran: the step's text and the retention set.

    The text of the schema step's functions counts as the step's: a changed one is created
    again too.
    """
    step = hashlib.sha256((STEP_FUNCTIONS_SQL + STEP_SQL).encode()).hexdigest()
    retain = None if retention is None else {"ms": retention.ms}
    return json.dumps({"step": step, "retention": retain}, sort_keys=True)


def apply_step(dsn: str, retention: Retention | None) -> Retention:
    """Run :data:`STEP_SQL` (and set ``retention`` unless None) in one transaction.

    Returns the retention the database has afterwards. Needs resonate.sql
    applied first and a role that owns its functions (the one that applied it).
    """
    import psycopg

    with psycopg.connect(postgres_conninfo(dsn), autocommit=False) as conn:
        conn.execute(STEP_SQL)  # a script, not a literal
        if retention is not None:
            conn.execute(SET_RETENTION_SQL, (retention.ms,))
        row = conn.execute(READ_RETENTION_SQL).fetchone()
    return Retention(None if row is None else row[0])


class PrepareError(RuntimeError):
    """A database that cannot be prepared; the message says why and what to do."""


@dataclass(frozen=True)
class Prepared:
    """What :func:`prepare_database` did."""

    #: resonate.sql when it was applied; None when the database had it already.
    applied_schema: Path | None
    retention: Retention

    def lines(self) -> list[str]:
        schema = (
            f"resonate.sql applied from {self.applied_schema}"
            if self.applied_schema
            else "resonate.sql: already there"
        )
        return [
            schema,
            "timers: asyncrpc.process_timeouts(), which any member of resonate_worker may call",
            "timer scan: resonate._promise_timed without a pinned search_path, so it is "
            "inlined and idx_promises_timeout_at answers the scan",
            f"retention: settled invocations are deleted after {self.retention.describe()}"
            if self.retention.ms is not None
            else "retention: forever (nothing is deleted)",
        ]


def prepare_database(
    dsn: str, schema: Callable[[], Path], retention: Retention | None = None
) -> Prepared:
    """resonate.sql (from ``schema()``, only if the database has none), the timer wrapper,
    then :data:`STEP_SQL`.

    For a database someone else runs (`asyncrpc postgres prepare --url`).
    ``schema`` may raise :class:`~asyncrpc.postgres.schema.SchemaUnavailable`.
    """
    import psycopg

    from asyncrpc.runtime.config import redacted

    where = redacted(dsn)
    try:
        applied = None
        if not has_schema(dsn):
            applied = schema()
            apply_schema(dsn, applied)  # with the timer wrapper, in one transaction
        else:
            add_timer_driver(dsn)
        kept = apply_step(dsn, retention)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise PrepareError(
            f"{where}: the role may not change resonate's functions ({exc.diag.message_primary}); "
            "run prepare as the role that applied resonate.sql (their owner)"
        ) from None
    except psycopg.OperationalError as exc:
        raise PrepareError(f"cannot reach {where}: {str(exc).strip()}") from None
    except psycopg.Error as exc:
        raise PrepareError(f"{where}: {type(exc).__name__}: {str(exc).strip()}") from None
    return Prepared(applied, kept)
