"""A process's one connection to a resonate-pg database: requests and messages both.

With resonate-pg the server is a Postgres database: a request is ``SELECT
resonate.resonate_rpc(...)`` and the messages for a process are outbox rows it
drains, woken by ``NOTIFY`` or a short tick, so the connector ``resonate-pg``
(:class:`PostgresConnection`) is at once the SDK's network and its message
source. :class:`PostgresLink` keeps that connector and adds what a process of
this project needs from any connection to its server:

- every connection it opens (the pool's and the ``LISTEN`` one) carries
  keepalives, a TCP user timeout and a connect timeout
  (:mod:`asyncrpc.runtime.keepalive`), so a link that dies silently is an
  error within seconds, logged once when the database is lost and once when
  it answers again, instead of a request that hangs for a quarter of an hour;
- :meth:`health` says whether it reaches the database, and why not: a drain
  that failed, or no drain through for :data:`~asyncrpc.network.health.STALE_AFTER_S`
  seconds (the gateway's ``/healthz``); ``connected`` and ``on_first_connect``,
  as the HTTP poll stream has them, let a node print its ready line once a
  drain of its messages has gone through;
- a request that cannot reach the database (Postgres restarting, a connection
  the restart broke) is retried with a backoff while the process runs, as the
  HTTP connection retries an unreachable server, instead of failing the step;
- the timers are driven through ``asyncrpc.process_timeouts()`` where the
  schema step created it (a ``SECURITY DEFINER`` wrapper that any member of
  ``resonate_worker`` may call, see :mod:`asyncrpc.postgres.schema`), else
  through ``resonate.process_timeouts()``; only a role refused both leaves
  them to pg_cron, and a database that was down for a moment does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import psycopg
from psycopg import errors
from psycopg_pool import AsyncConnectionPool
from resonate.error import ConnectorError
from resonate.retry import ExponentialBackoff
from resonate_pg import PostgresConnection
from resonate_pg.client import PgConn, PgSessions
from resonate_pg.connection import PROCESS_TIMEOUTS_SQL

from asyncrpc.network.health import HEALTHY, STALE_AFTER_S, LinkHealth
from asyncrpc.runtime import config
from asyncrpc.runtime.keepalive import postgres_conninfo

log = logging.getLogger(__name__)

#: Database connections one process's pool may hold. Eleven processes share
#: one Postgres, whose default limit is 100 connections.
POOL_SIZE = 6
#: Seconds a request waits for a pooled connection before it counts as failed (and
#: is retried). Short, because a new request is what makes the pool connect again at
#: once (see :data:`RECONNECT_GIVE_UP_S`).
POOL_WAIT_S = 3.0
#: Seconds the pool retries a lost connection on its own before leaving it to the next
#: request. The pool's own retries back off (1, 2, 4, 8, 16 s ...): after an outage of
#: half a minute it would next try a quarter of a minute after the database is back.
#: Given up early, the next request starts a fresh attempt at once.
RECONNECT_GIVE_UP_S = 2.0
#: The timer driver the schema step creates: ``SECURITY DEFINER``, granted to resonate_worker.
WRAPPED_TIMERS_SQL = "SELECT asyncrpc.process_timeouts()"
#: What a database without the wrapper (or a role refused it) may still allow.
TIMER_DRIVERS = (WRAPPED_TIMERS_SQL, PROCESS_TIMEOUTS_SQL)
#: The wrapper does not exist in this database: try the next driver.
_NO_WRAPPER = (errors.UndefinedFunction, errors.InvalidSchemaName)


class LiveSessions:
    """resonate-pg's session source (its ``PgSessions`` seam) on connections that notice dead links.

    The same shape as the connector's own ``PsycopgSessions``: a pool for
    requests and drains, a dedicated connection for ``LISTEN``; every
    connection is opened with :func:`postgres_conninfo`, a request waits at
    most :data:`POOL_WAIT_S` seconds for a pooled connection, and a database
    that comes back is connected to within seconds.

    Every connection is in autocommit: each request (one ``SELECT
    resonate.resonate_rpc(...)``) and each dequeue is its own transaction,
    committed by the database as the statement ends. In a transaction, the
    database would hold the statement's row locks until the client's
    ``COMMIT`` arrived, and a client whose link died between the two would
    hold them until the database noticed it was gone: every other process's
    timers and requests on those rows wait that long. It also spares a round
    trip per request.
    """

    def __init__(self, dsn: str, *, max_size: int = POOL_SIZE) -> None:
        self._conninfo = postgres_conninfo(dsn)
        self._max_size = max_size
        self._pool: AsyncConnectionPool | None = None
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[PgConn]:
        pool = await self._ensure_pool()
        async with pool.connection() as conn:
            yield conn  # type: ignore[misc]  # psycopg's connection has PgConn's shape

    async def dedicated(self) -> PgConn:
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        return conn  # type: ignore[return-value]

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _ensure_pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    pool = AsyncConnectionPool(
                        self._conninfo,
                        min_size=1,
                        max_size=self._max_size,
                        timeout=POOL_WAIT_S,
                        reconnect_timeout=RECONNECT_GIVE_UP_S,
                        kwargs={"autocommit": True},
                        open=False,
                    )
                    await pool.open()
                    self._pool = pool
        return self._pool


class PostgresLink(PostgresConnection):
    """resonate-pg's connector for one process, saying whether it reaches the database."""

    def __init__(
        self,
        dsn: str,
        *,
        pid: str,
        group: str,
        backoff: ExponentialBackoff,
        on_first_connect: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sessions: PgSessions | None = None,
    ) -> None:
        """``sessions`` replaces the connections to ``dsn`` (:class:`LiveSessions`), for tests."""
        super().__init__(pid=pid, group=group, sessions=sessions or LiveSessions(dsn))
        self.connected = asyncio.Event()
        self._where = config.redacted(dsn)
        self._backoff = backoff
        self._on_first_connect = on_first_connect
        self._clock = clock
        #: When the last drain went through, and why the last one failed (while it fails).
        self._last_drain: float | None = None
        self._failure: str | None = None
        self._lost_at: float | None = None
        self._timer_drivers = list(TIMER_DRIVERS)

    def health(self) -> LinkHealth:
        """Whether this process reaches the database now, and if not, why."""
        if self._failure is not None:
            return LinkHealth(False, f"the database at {self._where} fails: {self._failure}")
        if self._last_drain is None:
            return LinkHealth(False, f"no answer yet from the database at {self._where}")
        silent = self._clock() - self._last_drain
        if silent > STALE_AFTER_S:
            return LinkHealth(
                False, f"no answer from the database at {self._where} for {silent:.0f}s"
            )
        return HEALTHY

    async def _drain(self) -> None:
        try:
            await super()._drain()
        except Exception as exc:
            self._lost(exc)
            raise
        self._found()

    def _lost(self, exc: BaseException) -> None:
        self.connected.clear()
        self._failure = _one_line(exc)
        if self._lost_at is None:
            self._lost_at = self._clock()
            log.warning(
                "lost the database at %s (%s); retrying until it answers",
                self._where,
                self._failure,
            )

    def _found(self) -> None:
        self._last_drain = self._clock()
        self._failure = None
        if self._lost_at is not None:
            log.warning(
                "the database at %s answers again (after %.0fs)",
                self._where,
                self._last_drain - self._lost_at,
            )
            self._lost_at = None
        self.connected.set()
        if self._on_first_connect is not None:
            on_first_connect, self._on_first_connect = self._on_first_connect, None
            on_first_connect()

    async def _fire_timers(self) -> None:
        """Fire due timers with the first driver this role may call; none left: pg_cron's job.

        A failure to reach the database propagates (the drain fails, and the
        next one tries again); only a refusal moves on to the next driver.
        """
        while self._drive_timers and self._timer_drivers:
            sql = self._timer_drivers[0]
            try:
                async with self._sessions.session() as conn:
                    await conn.execute(sql)
                return
            except (*_NO_WRAPPER, errors.InsufficientPrivilege) as exc:
                self._timer_drivers.pop(0)
                if self._timer_drivers:
                    log.info("%s: %s; firing timers with %s", sql, exc, self._timer_drivers[0])
                else:
                    self._drive_timers = False
                    log.warning(
                        "this role may not fire timers (%s): durable sleeps, retries and "
                        "lease expiries wait for pg_cron or another process. The schema "
                        "step's asyncrpc.process_timeouts() lets any member of "
                        "resonate_worker fire them (docs/deploy.md, Credentials).",
                        _one_line(exc),
                    )

    @property
    def timers(self) -> str | None:
        """Who fires this database's timers, as far as this process knows."""
        if not self._drive_timers or not self._timer_drivers:
            return "not this process (refused): pg_cron or another process must"
        return f"this process ({self._timer_drivers[0].removeprefix('SELECT ')})"

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        attempt = 0
        while True:
            try:
                return await super().send(req, headers)
            except ConnectorError as exc:
                if self._stopped or not isinstance(exc.__cause__, psycopg.OperationalError):
                    raise
                delay = self._backoff.delay(attempt)
                log.warning(
                    "a request to the database failed, retrying in %ss: %s",
                    delay,
                    _one_line(exc.__cause__),
                )
                await asyncio.sleep(delay)
                attempt += 1


def _one_line(exc: BaseException) -> str:
    """An error as one line of a log: libpq's messages span several."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text
