"""A process's one connection to a resonate-pg database: requests and messages both.

With resonate-pg the server is a Postgres database: a request is ``SELECT
resonate.resonate_rpc(...)`` and the messages for a process are outbox rows it
drains, woken by ``NOTIFY`` or a short tick, so the connector ``resonate-pg``
(:class:`PostgresConnection`) is at once the SDK's network and its message
source. :class:`PostgresLink` keeps that connector and adds what a process of
this project needs from any connection to its server:

- ``connected`` and ``on_first_connect``, as the HTTP poll stream has them: a
  node prints its ready line, and the gateway's health check passes, once a
  drain of its messages has gone through;
- a request that cannot reach the database (Postgres restarting, a connection
  the restart broke) is retried with a backoff while the process runs, as the
  HTTP connection retries an unreachable server, instead of failing the step;
- a wake-up drains only the queue it was for. resonate.sql notifies the
  channel of a row's address with the row's kind as payload, and every replica
  of a group listens on the group's channel; the connector answers every
  notification with a full drain (the timers, then three dequeues), so each
  idle replica paid all of that for each message to its group, and one took
  it. Here a message to the group costs each other replica one dequeue (which
  finds nothing: ``dequeue_execute`` claims with ``SKIP LOCKED``), and a
  message to this process one dequeue of its kind. The tick still drains
  everything: every 250 ms while the ``LISTEN`` connection is down, every
  :attr:`Pacing.quiet_tick` while it is up (a committed row's ``NOTIFY`` is
  not lost while the listener lives; the tick is then a backstop, e.g. for a
  drain that failed);
- one process drives the timers (``resonate.process_timeouts()``, four times a
  second) instead of every process on every wake: the one holding a session
  advisory lock (:data:`TIMER_LOCK`), taken on its ``LISTEN`` connection. When
  that process dies its connection closes, the lock is free, and another takes
  it within :attr:`Pacing.election` seconds (plus jitter). Every other process
  still fires the timers every few seconds (:attr:`Pacing.backstop`), for a
  driver that holds the lock but no longer runs (a blocked event loop);
- the driver also applies the database's retention (``asyncrpc.collect``,
  added by ``asyncrpc postgres prepare``; see :mod:`asyncrpc.postgres.tuning`)
  every :attr:`Pacing.collect` seconds;
- the timers are driven again once the database is back: the connector stops
  driving them after its first failure, which is right for a role that may not
  call them and wrong for a database that was only down for a moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import psycopg
from psycopg_pool import AsyncConnectionPool
from resonate.error import ConnectorError
from resonate.retry import ExponentialBackoff
from resonate_pg import PostgresConnection
from resonate_pg.client import PgConn, PgSessions
from resonate_pg.connection import (
    DEQUEUE_EXECUTE_SQL,
    DEQUEUE_UNBLOCK_SQL,
    PROCESS_TIMEOUTS_SQL,
)
from resonate_pg.wire import execute_message, outbox_channel, unblock_message

log = logging.getLogger(__name__)

#: Database connections one process's pool may hold. Eleven processes share
#: one Postgres, whose default limit is 100 connections.
POOL_SIZE = 6

#: The session advisory lock whose holder drives the timers of the database ("asyncrpc" in ASCII).
TIMER_LOCK = 0x6173796E63727063
TRY_LOCK_SQL = "SELECT pg_try_advisory_lock(%s)"
UNLOCK_SQL = "SELECT pg_advisory_unlock(%s)"
#: One retention batch: at most this many promises per transaction.
COLLECT_BATCH = 1000
#: Batches per round at most; a larger backlog goes on in the next round.
COLLECT_ROUND = 100
COLLECT_SQL = "SELECT asyncrpc.collect(%s)"


class AutocommitSessions:
    """resonate-pg's sessions (:class:`PgSessions`) on a pool of autocommit connections.

    Every statement the connector runs stands alone: ``resonate_rpc`` is one
    call that changes what it changes atomically, a ``dequeue_*`` commits the
    rows it claims before they are delivered, and ``process_timeouts`` is
    one call. In autocommit each is one round trip; in a transaction, as
    :class:`PsycopgSessions` opens them, each is three (``BEGIN``, the call,
    ``COMMIT``), and the two extra statements cost the database and every
    process CPU for nothing.
    """

    def __init__(self, conninfo: str, *, max_size: int = POOL_SIZE) -> None:
        self._conninfo = conninfo
        self._max_size = max_size
        self._pool: AsyncConnectionPool | None = None
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[PgConn]:
        pool = await self._ensure_pool()
        async with pool.connection() as conn:
            yield cast(PgConn, conn)

    async def dedicated(self) -> PgConn:
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        return cast(PgConn, conn)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _ensure_pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            async with self._lock:  # two first sessions at once must not open two pools
                if self._pool is None:
                    pool = AsyncConnectionPool(
                        self._conninfo,
                        min_size=1,
                        max_size=self._max_size,
                        kwargs={"autocommit": True},
                        open=False,
                    )
                    await pool.open()
                    self._pool = pool
        return self._pool


class Queue(enum.Enum):
    """One of the three outbox queues a process drains."""

    GROUP_EXECUTE = "execute, to the group"
    OWN_EXECUTE = "execute, to this process"
    OWN_UNBLOCK = "unblock, to this process"


EVERY_QUEUE = frozenset(Queue)


@dataclass(frozen=True)
class Pacing:
    """How often a link drains without a wake-up, drives timers and runs for the driver's lock."""

    #: Seconds between full drains while the ``LISTEN`` connection is down (the connector's tick).
    tick: float = 0.25
    #: Seconds between full drains while it is up: a backstop only.
    quiet_tick: float = 1.0
    #: Seconds between two ``process_timeouts()`` of the driver.
    timers: float = 0.25
    #: Seconds between two tries for the driver's lock, plus up to half of it as jitter.
    election: float = 0.5
    #: Seconds between two ``process_timeouts()`` of a process that is not the driver, give or
    #: take half of it (jitter).
    backstop: float = 5.0
    #: Seconds between two retention rounds of the driver.
    collect: float = 30.0


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
        pacing: Pacing = Pacing(),
        jitter: Callable[[], float] = random.random,
        sessions: PgSessions | None = None,
    ) -> None:
        """``sessions`` defaults to a pool of :data:`POOL_SIZE` connections to ``dsn``."""
        super().__init__(
            pid=pid,
            group=group,
            sessions=sessions or AutocommitSessions(dsn),
            tick=pacing.tick,
        )
        self.connected = asyncio.Event()
        self._backoff = backoff
        self._on_first_connect = on_first_connect
        self._pacing = pacing
        self._jitter = jitter
        self._group_channel = outbox_channel(self._anycast)
        self._own_channel = outbox_channel(self._unicast)
        #: The queues a wake-up is for; the first drain takes them all.
        self._due: set[Queue] = set(EVERY_QUEUE)
        self._listening = False
        #: Whether this process holds :data:`TIMER_LOCK` (on its ``LISTEN`` connection).
        self.driving = False
        self._elected = asyncio.Event()
        self._collecting = True

    # -- messages -------------------------------------------------------------

    def queues_of(self, channel: str, payload: str) -> frozenset[Queue]:
        """The queue a notification is for: its channel is the address, its payload the kind."""
        if channel == self._group_channel:
            return frozenset({Queue.GROUP_EXECUTE})
        if channel == self._own_channel and payload == "execute":
            return frozenset({Queue.OWN_EXECUTE})
        if channel == self._own_channel and payload == "unblock":
            return frozenset({Queue.OWN_UNBLOCK})
        return EVERY_QUEUE

    async def _drain(self, queues: frozenset[Queue] = EVERY_QUEUE) -> None:
        """Claim the messages of ``queues`` and hand them to the SDK.

        Each dequeue commits on its own (autocommit), so what one claimed is
        delivered even when a later one fails: its rows are gone from the outbox.
        """
        if not queues:
            return
        messages: list[str] = []
        try:
            async with self._sessions.session() as conn:
                for queue in Queue:
                    if queue in queues:
                        await self._claim(conn, queue, messages)
        except Exception:
            self.connected.clear()
            for message in messages:
                self._deliver(message)
            raise
        self.connected.set()
        if self._on_first_connect is not None:
            on_first_connect, self._on_first_connect = self._on_first_connect, None
            on_first_connect()
        for message in messages:
            self._deliver(message)

    async def _claim(self, conn: PgConn, queue: Queue, into: list[str]) -> None:
        """Claim every row of ``queue`` into ``into``, a page at a time, paging on a full read."""
        address = self._anycast if queue is Queue.GROUP_EXECUTE else self._unicast
        while True:
            if queue is Queue.OWN_UNBLOCK:
                cursor = await conn.execute(DEQUEUE_UNBLOCK_SQL, (address, self._limit))
                rows = await cursor.fetchall()
                into.extend(unblock_message(str(row[0])) for row in rows)
            else:
                cursor = await conn.execute(DEQUEUE_EXECUTE_SQL, (address, self._limit))
                rows = await cursor.fetchall()
                into.extend(execute_message(str(row[0]), int(row[1])) for row in rows)
            if len(rows) < self._limit:
                return

    async def _pump_loop(self) -> None:
        """Drain what a wake-up was for, then wait for the next one or the tick (a full drain)."""
        with contextlib.suppress(asyncio.CancelledError):
            while self._running:
                # Cleared before draining: a NOTIFY during the drain wakes the next pass.
                self._wake.clear()
                queues, self._due = frozenset(self._due), set()
                try:
                    await self._drain(queues)
                except Exception as exc:
                    self._due |= queues
                    if self._running:
                        log.warning("postgres drain failed: %s", exc)
                tick = self._pacing.quiet_tick if self._listening else self._tick
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=tick)
                except TimeoutError:
                    self._due |= EVERY_QUEUE

    async def _listen_once(self) -> None:
        """Listen on this process's two channels; between notifications, run for the driver."""
        conn = cast(psycopg.AsyncConnection, await self._sessions.dedicated())
        try:
            for channel in (self._own_channel, self._group_channel):
                # 'resonate_q_' + 32 hex characters, minted by outbox_channel: nothing to escape.
                await conn.execute(f'LISTEN "{channel}"')
            log.info("postgres listening (uni=%s any=%s)", self._unicast, self._anycast)
            self._listening = True
            # Rows may have landed while the listener was down.
            self._due |= EVERY_QUEUE
            self._wake.set()
            while self._running:
                await self._elect(conn)
                period = self._pacing.election * (1 + self._jitter() / 2)
                async for notification in conn.notifies(timeout=period):
                    self._due |= self.queues_of(notification.channel, notification.payload)
                    self._wake.set()
        finally:
            self._listening = False
            self._stop_driving()
            with contextlib.suppress(Exception):
                await conn.close()

    # -- timers and retention -------------------------------------------------

    async def start(self) -> None:
        """Start the connector's pump and listener and, beside them, the timer loop."""
        started = bool(self._tasks)
        await super().start()
        if self._tasks and not started:
            self._tasks.append(asyncio.create_task(self._timer_loop()))

    async def _elect(self, conn: psycopg.AsyncConnection) -> None:
        """Take the driver's lock if it is free; give it up once this role may not fire timers."""
        if self.driving and not self._drive_timers:
            await conn.execute(UNLOCK_SQL, (TIMER_LOCK,))
            self._stop_driving()
            return
        if self.driving or not self._drive_timers:
            return
        row = await (await conn.execute(TRY_LOCK_SQL, (TIMER_LOCK,))).fetchone()
        if row is not None and row[0]:
            self.driving = True
            self._elected.set()
            log.info("this process drives the timers (resonate.process_timeouts) and retention")

    def _stop_driving(self) -> None:
        if self.driving:
            log.info("this process no longer drives the timers")
        self.driving = False
        self._elected.clear()

    async def _timer_loop(self) -> None:
        """The driver: timers every :attr:`Pacing.timers`, retention every :attr:`Pacing.collect`.

        Otherwise the timers every :attr:`Pacing.backstop` (give or take half of it), and
        the driver's pace at once on being elected.
        """
        collected_at: float | None = None
        with contextlib.suppress(asyncio.CancelledError):
            while self._running and self._drive_timers:
                if not self.driving:
                    collected_at = None
                    await self._guarded(self._fire_timers)
                    backstop = self._pacing.backstop * (0.5 + self._jitter())
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._elected.wait(), timeout=backstop)
                    continue
                now = time.monotonic()
                if collected_at is None or now - collected_at >= self._pacing.collect:
                    collected_at = now
                    await self._guarded(self._collect)
                await self._guarded(self._fire_timers)
                await asyncio.sleep(self._pacing.timers)

    @staticmethod
    async def _guarded(work: Callable[[], Awaitable[object]]) -> None:
        """Run ``work``; a database that cannot be reached is the drain's to report."""
        try:
            await work()
        except Exception as exc:
            log.debug("postgres timers or retention failed: %s", exc)

    async def _fire_timers(self) -> None:
        """Fire due timers; give up on them only when this role may not (pg_cron's job then)."""
        if not self._drive_timers:
            return
        try:
            async with self._sessions.session() as conn:
                await conn.execute(PROCESS_TIMEOUTS_SQL)
        except psycopg.errors.InsufficientPrivilege as exc:
            self._drive_timers = False
            log.warning("resonate.process_timeouts() refused, leaving timers to pg_cron: %s", exc)

    async def _collect(self) -> int:
        """Delete what the database's retention says is old, in batches; how many promises went."""
        if not self._collecting:
            return 0
        deleted = 0
        try:
            for _ in range(COLLECT_ROUND):
                async with self._sessions.session() as conn:
                    row = await (await conn.execute(COLLECT_SQL, (COLLECT_BATCH,))).fetchone()
                batch = int(row[0]) if row is not None and row[0] is not None else 0
                deleted += batch
                if batch < COLLECT_BATCH:
                    break
        except (psycopg.errors.UndefinedFunction, psycopg.errors.InvalidSchemaName):
            self._collecting = False
            log.info(
                "no retention in this database: settled promises stay "
                "(`asyncrpc postgres prepare --retain` sets one)"
            )
        except psycopg.errors.InsufficientPrivilege as exc:
            self._collecting = False
            log.warning("asyncrpc.collect() refused, settled promises stay: %s", exc)
        if deleted:
            log.info("retention: deleted %d settled promises", deleted)
        return deleted

    # -- requests -------------------------------------------------------------

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        attempt = 0
        while True:
            try:
                return await super().send(req, headers)
            except ConnectorError as exc:
                if self._stopped or not isinstance(exc.__cause__, psycopg.OperationalError):
                    raise
                delay = self._backoff.delay(attempt)
                log.warning("Postgres request failed, retrying in %ss: %s", delay, exc.__cause__)
                await asyncio.sleep(delay)
                attempt += 1
