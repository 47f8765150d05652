"""Reading resonate-pg, where the server is a Postgres database (psycopg): blocking and async.

Every request goes through ``resonate.resonate_rpc`` except ``promise.search`` and
``schedule.search``, which resonate-pg answers with 501: a search reads the
``resonate.promises`` table instead (:func:`search_query`), and the schedules its
``resonate.schedules`` table (:func:`schedules_query`), as they are, which needs a
role allowed to SELECT them.
:class:`PostgresTables` and :class:`AsyncPostgresTables` have the same methods
as the HTTP endpoints (:mod:`asyncrpc.readers.http`) and share every step
below; psycopg is imported on first use, as only a Postgres server needs it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from asyncrpc.protocol.answers import Answer, ScheduleSearch, Search, answer_of, envelope
from asyncrpc.protocol.errors import ServerRefused, ServerUnavailable, unreachable
from asyncrpc.protocol.patterns import WILDCARD, matches
from asyncrpc.protocol.records import PromiseRecord, ScheduleRecord
from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import ORIGIN_TAG
from asyncrpc.runtime import config
from asyncrpc.runtime.keepalive import postgres_conninfo

if TYPE_CHECKING:
    import psycopg

#: One protocol request, answered by resonate-pg's stored procedure.
RPC_SQL = "SELECT resonate.resonate_rpc(%s::text::jsonb)::text"
PROMISE_COLUMNS = (
    "id, state, param_headers, param_data, value_headers, value_data, tags, "
    "timeout_at, created_at, settled_at"
)
SCHEDULE_COLUMNS = (
    "id, cron, promise_id, promise_timeout, promise_tags, created_at, next_run_at, last_run_at"
)

Rows = list[tuple[Any, ...]]


def search_query(
    tags: Mapping[str, str] | None,
    state: PromiseState | str | None,
    id_prefix: str | None,
    newest: int | None = None,
) -> tuple[str, list[Any]]:
    """The SELECT that answers a ``promise.search`` from resonate-pg's ``promises`` table.

    The origin tag is matched on the indexed ``origin_id`` column, so reading one
    invocation's call graph does not scan every promise. With ``newest``, the
    newest that many, newest first.
    """
    where: list[str] = []
    params: list[Any] = []
    for key, value in (tags or {}).items():
        if key == ORIGIN_TAG:
            where.append("origin_id = %s")
            params.append(value)
        else:
            where.append("tags ->> %s = %s")
            params += [key, value]
    if state is not None:
        where.append("state LIKE %s" if str(state) == PromiseState.REJECTED else "state = %s")
        params.append(f"{state}%" if str(state) == PromiseState.REJECTED else str(state))
    if id_prefix:
        where.append("starts_with(id, %s)")
        params.append(id_prefix)
    condition = " AND ".join(where) or "TRUE"
    sql = f"SELECT {PROMISE_COLUMNS} FROM resonate.promises WHERE {condition}"
    if newest is None:
        return f"{sql} ORDER BY created_at, id", params
    return f"{sql} ORDER BY created_at DESC, id DESC LIMIT %s", [*params, newest]


def schedules_query(pattern: str) -> tuple[str, list[Any]]:
    """The SELECT that reads the schedules ``pattern`` may name from resonate-pg's table, by id.

    The literal start of the pattern narrows the read (the primary key's order);
    :func:`schedules_of_rows` matches the whole pattern.
    """
    sql = f"SELECT {SCHEDULE_COLUMNS} FROM resonate.schedules"
    prefix = pattern.partition(WILDCARD)[0]
    if prefix:
        return f"{sql} WHERE starts_with(id, %s) ORDER BY id", [prefix]
    return f"{sql} ORDER BY id", []


def schedules_of_rows(rows: Rows, pattern: str) -> list[ScheduleRecord]:
    """The rows of ``resonate.schedules`` that ``pattern`` names, as ``schedule.get`` answers."""
    return [
        ScheduleRecord.from_wire(
            {
                "id": sid,
                "cron": cron,
                "promiseId": template,
                "promiseTimeout": timeout,
                "promiseTags": tags,
                "createdAt": created,
                "nextRunAt": next_run,
                "lastRunAt": last_run,
            }
        )
        for sid, cron, template, timeout, tags, created, next_run, last_run in rows
        if matches(pattern, sid)
    ]


def promise_of_row(row: Sequence[Any], now_ms: int) -> PromiseRecord:
    """A row of ``resonate.promises`` as a record, as ``promise.get`` would answer it.

    A pending promise past its timeout reads as timed out (a timer as resolved),
    as resonate-pg reports it before its timer loop has settled it.
    """
    (pid, state, param_headers, param_data, value_headers, value_data, tags) = row[:7]
    timeout_at, created_at, settled_at = row[7:]
    if state == PromiseState.PENDING and timeout_at <= now_ms:
        timer = (tags or {}).get("resonate:timer") == "true"
        state = PromiseState.RESOLVED if timer else PromiseState.REJECTED_TIMEDOUT
        settled_at = timeout_at
    return PromiseRecord.from_wire(
        {
            "id": pid,
            "state": state,
            "param": {"headers": param_headers, "data": param_data},
            "value": {"headers": value_headers, "data": value_data},
            "tags": tags,
            "timeoutAt": timeout_at,
            "createdAt": created_at,
            "settledAt": settled_at,
        }
    )


def now_ms() -> int:
    return int(time.time() * 1000)


#: Kinds resonate.sql answers 501 (the embedded server's extensions): answered here as it
#: would, without a round trip per step the dashboard draws.
NOT_IMPLEMENTED = frozenset({"task.acquisitions"})


def rpc_query(kind: str, token: str | None, data: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """The SELECT that sends one protocol request to ``resonate.resonate_rpc``."""
    return RPC_SQL, [json.dumps(envelope(kind, token, **data))]


def answer_of_rows(rows: Rows) -> Answer:
    """``resonate_rpc``'s one row as an answer (its status is in the envelope's head)."""
    return answer_of(200, rows[0][0])


def records_of_rows(rows: Rows, now: int) -> list[PromiseRecord]:
    """The rows of a search, read at ``now`` (ms), as records."""
    return [promise_of_row(row, now) for row in rows]


def connect_options(timeout: float) -> dict[str, Any]:
    return {"autocommit": True, "connect_timeout": max(1, round(timeout))}


def failed(dsn: str, exc: psycopg.Error) -> ServerUnavailable | ServerRefused:
    """The error for a read that failed: the database is out of reach, or it refused the read."""
    import psycopg

    if isinstance(exc, psycopg.OperationalError):
        return unreachable(config.redacted(dsn), exc)
    return ServerRefused(f"the database refused the read: {exc}")


class PostgresTables:
    """Reads a resonate-pg database, blocking: one connection, opened when first needed.

    The connection kept from an earlier read dies with its backend (a restart of
    Postgres) without the reader being told: a read that fails on it is tried once
    more on a new connection, which every read allows, so that a database that
    answers again is read, not reported out of reach. A new connection that fails is
    not tried again: the database is out of reach.
    """

    def __init__(self, dsn: str, token: str | None, timeout: float) -> None:
        self.dsn = dsn
        self.token = token
        self._timeout = timeout
        self._conn: psycopg.Connection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _fetch(self, sql: str, params: Sequence[Any]) -> Rows:
        import psycopg  # only a Postgres server needs it; `asyncrpc call` skips the import

        for attempt in range(2):
            reused = self._conn is not None and not self._conn.closed
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(
                        postgres_conninfo(self.dsn), **connect_options(self._timeout)
                    )
                return self._conn.execute(sql, params).fetchall()
            except psycopg.Error as exc:
                if not isinstance(exc, psycopg.OperationalError):
                    raise failed(self.dsn, exc) from None
                self.close()
                if not (reused and attempt == 0):
                    raise failed(self.dsn, exc) from None
        raise AssertionError("unreachable: the second attempt returns or raises")

    def ask(self, kind: str, **data: Any) -> Answer:
        """One request of ``kind`` through ``resonate_rpc``, and its answer."""
        if kind in NOT_IMPLEMENTED:
            return Answer(501, None)
        return answer_of_rows(self._fetch(*rpc_query(kind, self.token, data)))

    def search(self, search: Search) -> list[PromiseRecord]:
        """Every promise ``search`` matches, read from the table, oldest first."""
        sql, params = search_query(search.tags, search.state, search.id_prefix, search.newest)
        now = now_ms()
        return records_of_rows(self._fetch(sql, params), now)

    def schedules(self, search: ScheduleSearch) -> list[ScheduleRecord]:
        """Every schedule ``search`` names, read from the table, by id."""
        rows = self._fetch(*schedules_query(search.pattern))
        search.found = schedules_of_rows(rows, search.pattern)
        search.done = True
        return search.found

    def answers(self) -> bool:
        """Whether the database answers a request (any answer, even a 404)."""
        try:
            self.ask("promise.get", id="")
        except (ServerUnavailable, ServerRefused):
            return False
        return True


class AsyncPostgresTables:
    """:class:`PostgresTables` for an event loop; a dead kept connection is replaced alike."""

    def __init__(self, dsn: str, token: str | None, timeout: float) -> None:
        self.dsn = dsn
        self.token = token
        self._timeout = timeout
        self._conn: psycopg.AsyncConnection | None = None

    async def aclose(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _fetch(self, sql: str, params: Sequence[Any]) -> Rows:
        import psycopg

        for attempt in range(2):
            reused = self._conn is not None and not self._conn.closed
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        postgres_conninfo(self.dsn), **connect_options(self._timeout)
                    )
                cursor = await self._conn.execute(sql, params)
                return await cursor.fetchall()
            except psycopg.Error as exc:
                if not isinstance(exc, psycopg.OperationalError):
                    raise failed(self.dsn, exc) from None
                await self.aclose()
                if not (reused and attempt == 0):
                    raise failed(self.dsn, exc) from None
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def ask(self, kind: str, **data: Any) -> Answer:
        """One request of ``kind`` through ``resonate_rpc``, and its answer."""
        if kind in NOT_IMPLEMENTED:
            return Answer(501, None)
        return answer_of_rows(await self._fetch(*rpc_query(kind, self.token, data)))

    async def search(self, search: Search) -> list[PromiseRecord]:
        """Every promise ``search`` matches, read from the table, oldest first."""
        sql, params = search_query(search.tags, search.state, search.id_prefix, search.newest)
        now = now_ms()
        return records_of_rows(await self._fetch(sql, params), now)

    async def schedules(self, search: ScheduleSearch) -> list[ScheduleRecord]:
        """Every schedule ``search`` names, read from the table, by id."""
        rows = await self._fetch(*schedules_query(search.pattern))
        search.found = schedules_of_rows(rows, search.pattern)
        search.done = True
        return search.found

    async def answers(self) -> bool:
        """Whether the database answers a request (any answer, even a 404)."""
        try:
            await self.ask("promise.get", id="")
        except (ServerUnavailable, ServerRefused):
            return False
        return True
