"""One database connection per process in libpq's pipeline mode: many statements in flight.

Every statement a resonate-pg process runs stands alone (autocommit: a
``resonate_rpc`` call, a ``dequeue_*``, the timers), so nothing needs a
connection of its own for longer than one statement. :class:`PipelinedSessions`
sends every statement of the process, from however many tasks at once, down
one connection in libpq's pipeline mode: each is a prepared statement followed
by a sync point of its own (its own transaction: an error in one aborts only
it), and the answers come back in the order the statements went out, each to
the task that sent it, once its transaction is committed. The connection's
socket stays registered with the event loop, so a statement costs the client
one send and its share of one read, not a pool check-out, a cursor, and a
socket registered and dropped again. The same connection ``LISTEN``s
(:meth:`PipelinedSessions.listen`): a notification is read with the answers,
not by a second connection whose driver wakes every tenth of a second.
docs/architecture.md ("resonate-pg: one pipelined connection per process")
has the measurements behind it.

What is given up is a second backend per process: statements of one process
run one after the other in the database. A statement holds no lock before it
runs, so one waiting for a lock another process holds only delays the
statements behind it; it cannot deadlock them.

The connection is opened with psycopg (``postgres_conninfo``: keepalives, a
TCP user timeout, a connect timeout) and then driven through psycopg's libpq
binding (:mod:`psycopg.pq`). A connection that fails fails every statement in
flight with :class:`psycopg.OperationalError`; the next statement opens a new
one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import re
from collections.abc import Callable, Sequence
from typing import Any, cast

import psycopg
from psycopg import errors, pq
from resonate_pg.client import PgConn

from asyncrpc.runtime.keepalive import postgres_conninfo

#: Column types whose text a result turns into Python values; any other stays text.
_BOOL_OID = 16
_INT_OIDS = frozenset({20, 21, 23})
#: Result and connection statuses as the plain integers libpq's binding returns: compared
#: on every answer, where a lookup through the enum classes costs more than the comparison.
_COMMAND_OK = int(pq.ExecStatus.COMMAND_OK)
_TUPLES_OK = int(pq.ExecStatus.TUPLES_OK)
_PIPELINE_SYNC = int(pq.ExecStatus.PIPELINE_SYNC)
_PIPELINE_ABORTED = int(pq.ExecStatus.PIPELINE_ABORTED)
_CONNECTION_OK = int(pq.ConnStatus.OK)
#: The only placeholder a statement may use (as psycopg's ``%s``), numbered for libpq.
_PLACEHOLDER = re.compile(r"%s")


def numbered(sql: str) -> bytes:
    """``sql`` with psycopg's ``%s`` placeholders as libpq's ``$1``, ``$2``, ...

    Statements here are the link's own, with positional placeholders only; any
    other ``%`` is refused rather than guessed at.
    """
    count = iter(range(1, 1 + sql.count("%s")))
    text = _PLACEHOLDER.sub(lambda _: f"${next(count)}", sql)
    if "%" in text:
        raise ValueError(f"only %s placeholders are supported: {sql!r}")
    return text.encode()


def encoded(params: Sequence[object] | None) -> list[bytes | None]:
    """Parameters as libpq's text format: strings and integers (None is NULL)."""
    out: list[bytes | None] = []
    for value in params or ():
        if value is None:
            out.append(None)
        elif isinstance(value, bool):
            out.append(b"t" if value else b"f")
        elif isinstance(value, int | str):
            out.append(str(value).encode())
        else:
            raise TypeError(f"unsupported parameter type {type(value).__name__}")
    return out


def _rows(result: pq.abc.PGresult) -> list[tuple[Any, ...]]:
    """A result's rows, with booleans and integers as Python values, the rest as text."""
    if result.ntuples == 1 and result.nfields == 1:  # a request's answer: one value
        raw = result.get_value(0, 0)
        kind = result.ftype(0)
        if raw is None:
            return [(None,)]
        if kind == _BOOL_OID:
            return [(raw == b"t",)]
        if kind in _INT_OIDS:
            return [(int(raw),)]
        return [(raw.decode(),)]
    columns = range(result.nfields)
    kinds = [result.ftype(column) for column in columns]
    rows = []
    for row in range(result.ntuples):
        values: list[Any] = []
        for column in columns:
            raw = result.get_value(row, column)
            if raw is None:
                values.append(None)
            elif kinds[column] == _BOOL_OID:
                values.append(raw == b"t")
            elif kinds[column] in _INT_OIDS:
                values.append(int(raw))
            else:
                values.append(raw.decode())
        rows.append(tuple(values))
    return rows


#: Where a statement's answers are: its preparation's, its own, its sync point's (plain
#: integers: a statement passes through them on every answer).
_PREPARING = 0
_RUNNING = 1
_SYNCING = 2


class _Pending:
    """A statement sent and not yet answered to the end (its sync point), oldest first."""

    __slots__ = ("failure", "future", "name", "phase", "result", "unprepared")

    def __init__(
        self, future: asyncio.Future[list[tuple[Any, ...]]], name: bytes, unprepared: str | None
    ) -> None:
        self.future = future
        #: The prepared statement it runs.
        self.name = name
        #: The statement's text while its preparation went out with it (unprepared again
        #: when that fails: the statement fails with the preparation's error).
        self.unprepared = unprepared
        self.phase = _PREPARING if unprepared is not None else _RUNNING
        self.result: pq.abc.PGresult | None = None
        self.failure: psycopg.Error | None = None


def _error(result: pq.abc.PGresult, encoding: str) -> psycopg.Error:
    """The psycopg error a failed result stands for (its class from the SQLSTATE)."""
    sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
    message = (result.error_message or b"").decode(encoding, "replace").strip()
    cls: type[psycopg.Error] = psycopg.DatabaseError
    if sqlstate:
        with contextlib.suppress(KeyError):
            cls = errors.lookup(sqlstate.decode())
    return cls(message or "the database refused the statement")


class PipelinedConnection:
    """One connection in pipeline mode; :meth:`execute` may be awaited by many tasks at once."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn
        self._pg = conn.pgconn
        self._encoding = conn.info.encoding
        self._loop = asyncio.get_running_loop()
        self._pending: collections.deque[_Pending] = collections.deque()
        #: The name of each statement prepared on this connection, by its text.
        self._prepared: dict[str, bytes] = {}
        self._names = itertools.count()
        #: Why a preparation failed, by name: statements sent with the name meanwhile fail so.
        self._unprepared: dict[bytes, psycopg.Error] = {}
        self._writing = False
        self._broken: psycopg.OperationalError | None = None
        #: Called with (channel, payload) for each notification of a channel this connection
        #: listens on (:meth:`PipelinedSessions.listen`).
        self.on_notify: Callable[[str, str], None] | None = None
        #: Set once the connection is lost; :attr:`failure` says why.
        self.closed = asyncio.Event()
        self._fd = self._pg.socket
        self._pg.nonblocking = 1
        self._pg.enter_pipeline_mode()
        self._loop.add_reader(self._fd, self._on_readable)

    @classmethod
    async def connect(cls, conninfo: str) -> PipelinedConnection:
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        return cls(conn)

    @property
    def broken(self) -> bool:
        return self._broken is not None or self._pg.status != _CONNECTION_OK

    @property
    def failure(self) -> psycopg.OperationalError | None:
        """Why the connection was lost (None while it lives)."""
        return self._broken

    async def execute(
        self, sql: str, params: Sequence[object] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run ``sql`` alone (its own transaction) and return its rows once it is committed."""
        return await self.submit(sql, params)

    def submit(
        self, sql: str, params: Sequence[object] | None = None
    ) -> asyncio.Future[list[tuple[Any, ...]]]:
        """Send ``sql`` to run alone; the future of its rows, set once it is committed.

        What :meth:`execute` awaits, for a caller that awaits the future itself: one
        coroutine less per statement on the hot path.
        """
        if self._broken is not None:
            raise self._broken
        future: asyncio.Future[list[tuple[Any, ...]]] = self._loop.create_future()
        name = self._prepared.get(sql)
        try:
            if name is None:
                name = f"asyncrpc_{next(self._names)}".encode()
                self._pg.send_prepare(name, numbered(sql))
                self._prepared[sql] = name
                self._pending.append(_Pending(future, name, sql))
            else:
                self._pending.append(_Pending(future, name, None))
            self._pg.send_query_prepared(name, encoded(params))
            self._pg.pipeline_sync()
            self._flush()
        except psycopg.OperationalError as exc:
            self._fail(exc)
            if not future.done():  # it failed before it was queued: nothing else answers it
                future.set_exception(exc)
        return future

    def _flush(self) -> None:
        if self._pg.flush() and not self._writing:  # the socket is full: send the rest later
            self._writing = True
            self._loop.add_writer(self._fd, self._on_writable)

    def _on_writable(self) -> None:
        try:
            if not self._pg.flush():
                self._writing = False
                self._loop.remove_writer(self._fd)
        except psycopg.OperationalError as exc:
            self._fail(exc)

    def _on_readable(self) -> None:
        pg, pending = self._pg, self._pending
        try:
            pg.consume_input()
            while pending and not pg.is_busy():
                self._take(pg.get_result())
            while (notification := pg.notifies()) is not None:
                if self.on_notify is not None:
                    self.on_notify(
                        notification.relname.decode(self._encoding),
                        notification.extra.decode(self._encoding),
                    )
        except psycopg.OperationalError as exc:
            self._fail(exc)
            return
        if pg.status != _CONNECTION_OK:
            self._fail(psycopg.OperationalError("the connection to the database is lost"))

    def _take(self, result: pq.abc.PGresult | None) -> None:
        """One result of the oldest statement (None ends its preparation's or its own results).

        The statement is answered at its sync point, once its transaction is committed: in
        the extended protocol the commit comes after the statement's own results.
        """
        pending = self._pending[0]
        phase = pending.phase
        if phase == _SYNCING:
            if result is None:
                return
            if result.status != _PIPELINE_SYNC:  # the commit failed
                pending.failure = pending.failure or _error(result, self._encoding)
                return
            self._pending.popleft()
            future = pending.future
            if future.done():
                return
            if pending.failure is not None:
                future.set_exception(pending.failure)
            else:
                future.set_result(_rows(pending.result) if pending.result is not None else [])
            return
        if result is None:
            pending.phase = phase + 1
            return
        status = result.status
        if phase == _PREPARING:
            if status != _COMMAND_OK:
                pending.failure = self._unprepared[pending.name] = _error(result, self._encoding)
                if pending.unprepared is not None:
                    self._prepared.pop(pending.unprepared, None)
        elif status in (_TUPLES_OK, _COMMAND_OK):
            pending.result = result
        elif status == _PIPELINE_ABORTED:
            pending.failure = pending.failure or psycopg.OperationalError(
                "the statement was not run"
            )
        else:
            failure = _error(result, self._encoding)
            if isinstance(failure, errors.InvalidSqlStatementName):
                failure = self._unprepared.get(pending.name, failure)
            pending.failure = pending.failure or failure

    def _fail(self, exc: psycopg.OperationalError) -> None:
        """The connection is lost: every statement in flight fails with ``exc``."""
        if self._broken is None:
            self._broken = exc
            self.closed.set()
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._fd)
            if self._writing:
                with contextlib.suppress(Exception):
                    self._loop.remove_writer(self._fd)
        while self._pending:
            pending = self._pending.popleft()
            if not pending.future.done():
                pending.future.set_exception(exc)

    async def close(self) -> None:
        self._fail(psycopg.OperationalError("the connection was closed"))
        await self._conn.close()


class _Cursor:
    """What resonate-pg's connector reads from a statement: its rows."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    async def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    async def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None


class _Session:
    """A session of :class:`PipelinedSessions`: statements go down the shared connection.

    It holds nothing of its own, so one serves every ``async with`` at once: entering
    and leaving it cost a method call each, not a generator and its context manager.
    """

    def __init__(self, sessions: PipelinedSessions) -> None:
        self._sessions = sessions

    async def __aenter__(self) -> PgConn:
        return cast(PgConn, self)

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def execute(self, query: str, params: Sequence[object] | None = None) -> _Cursor:
        return _Cursor(await self._sessions.execute(query, params))


class PipelinedSessions:
    """resonate-pg's sessions (``PgSessions``) over one :class:`PipelinedConnection`.

    ``session()`` hands out no connection of its own: every statement goes down
    the process's one pipelined connection, opened on first use and again after
    it failed; :meth:`listen` makes it the process's ``LISTEN`` connection too.
    ``dedicated()`` is a plain psycopg connection in autocommit (a retention
    round). Both are opened with
    :func:`~asyncrpc.runtime.keepalive.postgres_conninfo`.
    """

    def __init__(self, dsn: str) -> None:
        self._conninfo = postgres_conninfo(dsn)
        self._connection: PipelinedConnection | None = None
        self._lock = asyncio.Lock()
        self._session = _Session(self)

    def session(self) -> contextlib.AbstractAsyncContextManager[PgConn]:
        return cast(contextlib.AbstractAsyncContextManager[PgConn], self._session)

    async def execute(
        self, query: str, params: Sequence[object] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run ``query`` alone down the connection (opened first if need be); its rows."""
        current = self._connection
        if current is None or current.broken:
            current = await self.connection()
        return await current.submit(query, params)

    async def connection(self) -> PipelinedConnection:
        current = self._connection
        if current is not None and not current.broken:
            return current
        async with self._lock:  # one reconnection for every statement waiting on it
            current = self._connection
            if current is None or current.broken:
                if current is not None:
                    with contextlib.suppress(Exception):
                        await current.close()
                self._connection = None
                current = await PipelinedConnection.connect(self._conninfo)
                self._connection = current
            return current

    async def listen(
        self, channels: Sequence[str], on_notify: Callable[[str, str], None]
    ) -> PipelinedConnection:
        """The pipelined connection, listening on ``channels``; ``on_notify`` gets what comes.

        Listening stops with the connection: once its ``closed`` is set, listen again.
        """
        connection = await self.connection()
        connection.on_notify = on_notify
        for channel in channels:
            # Channels are minted by resonate-pg's outbox_channel ('resonate_q_' + 32 hex
            # characters): nothing to escape, and a quoted identifier keeps their case.
            await connection.execute(f'LISTEN "{channel}"')
        return connection

    async def dedicated(self) -> PgConn:
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        return cast(PgConn, conn)

    async def close(self) -> None:
        current, self._connection = self._connection, None
        if current is not None:
            await current.close()
