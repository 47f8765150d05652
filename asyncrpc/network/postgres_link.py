"""A process's one connection to a resonate-pg database: requests and messages both.

With resonate-pg the server is a Postgres database: a request is ``SELECT
resonate.resonate_rpc(...)`` and the messages for a process are outbox rows it
drains, woken by ``NOTIFY`` or a short tick, so the connector ``resonate-pg``
(:class:`PostgresConnection`) is at once the SDK's network and its message
source. :class:`PostgresLink` keeps that connector and adds what a process of
this project needs from any connection to its server:

- every statement stands alone (autocommit) and goes down the process's one
  pipelined connection (:class:`~asyncrpc.network.pg_pipeline.PipelinedSessions`),
  however many tasks send at once, and that connection is also the one that
  ``LISTEN``s: one backend per process. It carries keepalives, a TCP user
  timeout and a connect timeout (:mod:`asyncrpc.runtime.keepalive`), so a
  link that dies silently is an error within seconds, logged once when the
  database is lost and once when it answers again, instead of a request that
  hangs for a quarter of an hour;
- :meth:`health` says whether it reaches the database, and why not: a drain
  that failed, or no drain through for :data:`~asyncrpc.network.health.STALE_AFTER_S`
  seconds (the gateway's ``/healthz``); ``connected`` and ``on_first_connect``,
  as the HTTP poll stream has them, let a node print its ready line once a
  drain of its messages has gone through;
- a request goes to ``asyncrpc.rpc()`` (:data:`WRAPPED_RPC_SQL`, created by
  the schema step: resonate_rpc, with ``preload`` on an acquire of a resumed
  task, so the SDK's replay does not ask again for the child it awaited: see
  :mod:`asyncrpc.postgres.schema`), else, in a database without it or for a
  role refused it, to ``resonate.resonate_rpc``;
- a request that cannot reach the database (Postgres restarting, a connection
  the restart broke) is retried with a backoff while the process runs, as the
  HTTP connection retries an unreachable server, instead of failing the step;
- a wake-up drains only the queue it was for. resonate.sql notifies the
  channel of a row's address with the row's kind as payload; the connector
  listens on its group's channel in every replica and answers every
  notification with a full drain (the timers, then three dequeues), so each
  idle replica paid all of that for each message to its group, and one took
  it. Here a message to this process costs one dequeue of its kind, and only
  one replica of a group listens on the group's channel: the one holding the
  group's session advisory lock (:func:`listener_lock`), taken on its
  connection and tried in the same election as the timer driver's lock. A
  message to the group wakes that replica alone, whatever the number of idle
  replicas. The others still drain the group's queue at least once a tick,
  however often their own channel wakes them, so when the listener dies (its
  connection closes, and the lock with it) or hangs, a message to the group
  waits at most a tick, and when it dies another replica takes the lock
  within :attr:`Pacing.election` seconds (plus jitter). The tick drains
  everything: every 250 ms while the ``LISTEN`` connection is down or after a
  drain that failed, every :attr:`Pacing.quiet_tick` while it is up (a
  committed row's ``NOTIFY`` is not lost while the listener lives; the tick is
  then a backstop). The dequeues of one drain go out together;
- one process drives the timers (four times a second) instead of every
  process on every wake: the one holding a session advisory lock
  (:data:`TIMER_LOCK`), taken on its connection. When that process
  dies its connection closes, the lock is free, and another takes it within
  :attr:`Pacing.election` seconds (plus jitter). Every other process still
  fires the timers every few seconds (:attr:`Pacing.backstop`), for a driver
  that holds the lock but no longer runs (a blocked event loop);
- the timers are fired through ``asyncrpc.process_timeouts()`` where the
  schema step created it (a ``SECURITY DEFINER`` wrapper that any member of
  ``resonate_worker`` may call, see :mod:`asyncrpc.postgres.schema`), else
  through ``resonate.process_timeouts()``; only a role refused both leaves
  them to pg_cron (and never runs for the lock), and a database that was down
  for a moment does not;
- the driver also applies the database's retention (``asyncrpc.collect``,
  added by asyncrpc's step; see :mod:`asyncrpc.postgres.tuning`) every
  :attr:`Pacing.collect` seconds;
- leases in the dequeue: a node (:meth:`PostgresLink.take_leases`; the
  gateway never does) claims its execute rows with the schema step's
  ``asyncrpc.dequeue_acquire`` (:data:`DEQUEUE_ACQUIRE_SQL`), which also
  acquires each row's task for this process in the same transaction and
  returns the answer ``asyncrpc.rpc`` gives that acquire. The execute message
  goes to the SDK as always; the answer is kept, and the SDK's ``task.acquire``
  of that task and version, which follows at once, is answered from it with no
  statement: one statement and one commit less per step. Leases are taken only
  while the SDK has room to run the task now (:attr:`Leases.room`, its free
  permits: a lease taken for a task that waits for a permit would run out
  while it waits), and a kept answer the SDK has not asked for within
  :attr:`Leases.keep_s` (a quarter of the ttl) is dropped: the SDK's acquire
  then goes to the database and is refused, the lease lapses and the task is
  given again, as after a crash. A database without the function, or a role
  refused it, gets the plain dequeue (logged once).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psycopg
from psycopg import errors
from resonate.error import ConnectorError
from resonate.retry import ExponentialBackoff
from resonate_pg import PostgresConnection
from resonate_pg.connection import (
    DEQUEUE_EXECUTE_SQL,
    DEQUEUE_UNBLOCK_SQL,
    PROCESS_TIMEOUTS_SQL,
    RPC_SQL,
)
from resonate_pg.wire import execute_message, outbox_channel, unblock_message

from asyncrpc.network.eager import eager_tasks
from asyncrpc.network.health import HEALTHY, STALE_AFTER_S, LinkHealth
from asyncrpc.network.leases import KeptLeases, Leases
from asyncrpc.network.pg_pipeline import PipelinedConnection, PipelinedSessions
from asyncrpc.runtime import config

log = logging.getLogger(__name__)

#: The timer driver the schema step creates: ``SECURITY DEFINER``, granted to resonate_worker.
WRAPPED_TIMERS_SQL = "SELECT asyncrpc.process_timeouts()"
#: What a database without the wrapper (or a role refused it) may still allow.
TIMER_DRIVERS = (WRAPPED_TIMERS_SQL, PROCESS_TIMEOUTS_SQL)
#: The wrapper does not exist in this database: try the next driver.
_NO_WRAPPER = (errors.UndefinedFunction, errors.InvalidSchemaName)

#: The request entry point the schema step creates: resonate_rpc, with ``preload`` on an acquire.
WRAPPED_RPC_SQL = "SELECT asyncrpc.rpc(%s)"

#: The session advisory lock whose holder drives the timers of the database ("asyncrpc" in ASCII).
TIMER_LOCK = 0x6173796E63727063
UNLOCK_SQL = "SELECT pg_advisory_unlock(%s)"
#: One retention batch: at most this many promises per transaction.
COLLECT_BATCH = 1000
#: Batches per round at most; a larger backlog goes on in the next round.
COLLECT_ROUND = 100
COLLECT_SQL = "SELECT asyncrpc.collect(%s)"

#: The dequeue that takes leases, created by the schema step: target, limit, pid, ttl, leases.
DEQUEUE_ACQUIRE_SQL = (
    "SELECT task, task_version, acquired FROM asyncrpc.dequeue_acquire(%s, %s, %s, %s, %s)"
)


class Queue(enum.Enum):
    """One of the three outbox queues a process drains.

    Hashed by identity (a member is its only instance): the queues a wake-up is for
    are a set, filled on every notification, where :class:`enum.Enum`'s own hash, a
    Python method hashing the member's name, costs more than the set's work.
    """

    GROUP_EXECUTE = "execute, to the group"
    OWN_EXECUTE = "execute, to this process"
    OWN_UNBLOCK = "unblock, to this process"

    __hash__ = object.__hash__


EVERY_QUEUE = frozenset(Queue)
#: The queues in the order a drain delivers their messages.
QUEUE_ORDER = tuple(Queue)
_GROUP_EXECUTE = frozenset({Queue.GROUP_EXECUTE})
_OWN_EXECUTE = frozenset({Queue.OWN_EXECUTE})
_OWN_UNBLOCK = frozenset({Queue.OWN_UNBLOCK})


def try_locks_sql(count: int) -> str:
    """One statement that tries ``count`` session advisory locks (an election's, in one trip)."""
    return "SELECT " + ", ".join(["pg_try_advisory_lock(%s)"] * count)


def listener_lock(anycast: str) -> int:
    """The session advisory lock whose holder listens on the channel of group address ``anycast``.

    64 bits of an MD5 of the address (signed, as Postgres's ``bigint``), so that
    every replica of a group, whatever its language or version, computes the
    same key from the address alone; two groups share a key with a chance of
    one in 2**64, and then one listener serves both and the other's messages
    wait for a tick.
    """
    digest = hashlib.md5(f"asyncrpc listener {anycast}".encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class Pacing:
    """How often a link drains without a wake-up, drives timers and runs for the driver's lock."""

    #: Seconds between full drains while the ``LISTEN`` connection is down (the connector's tick).
    tick: float = 0.25
    #: Seconds between full drains while it is up and the last drain went through: a backstop
    #: (every outbox row notifies its address as it commits), and the statement that finds a
    #: dead link on an idle connection within the user timeout (``runtime.keepalive``).
    quiet_tick: float = 1.0
    #: Seconds between two timer firings of the driver.
    timers: float = 0.25
    #: Seconds between two tries for the driver's lock and the group listener's (those this
    #: process does not hold), plus up to half of it as jitter.
    election: float = 2.0
    #: Seconds between two timer firings of a process that is not the driver, give or
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
        clock: Callable[[], float] = time.monotonic,
        sessions: PipelinedSessions | None = None,
    ) -> None:
        """``sessions`` replaces the connections to ``dsn`` (:class:`PipelinedSessions`)."""
        self._pipeline = sessions or PipelinedSessions(dsn)
        super().__init__(pid=pid, group=group, sessions=self._pipeline, tick=pacing.tick)
        self.connected = asyncio.Event()
        self._where = config.redacted(dsn)
        self._backoff = backoff
        self._on_first_connect = on_first_connect
        self._pacing = pacing
        self._jitter = jitter
        self._clock = clock
        #: When the last drain went through, and why the last one failed (while it fails).
        self._last_drain: float | None = None
        self._failure: str | None = None
        self._lost_at: float | None = None
        self._timer_drivers = list(TIMER_DRIVERS)
        self._rpc_sql = WRAPPED_RPC_SQL
        self._group_channel = outbox_channel(self._anycast)
        self._own_channel = outbox_channel(self._unicast)
        #: The queues a wake-up is for; the first drain takes them all.
        self._due: set[Queue] = set(EVERY_QUEUE)
        self._listening = False
        #: Whether this process holds :data:`TIMER_LOCK` (on its ``LISTEN`` connection).
        self.driving = False
        #: Whether this process holds its group's :func:`listener_lock` and listens on the
        #: group's channel.
        self.group_listener = False
        self._group_lock = listener_lock(self._anycast)
        self._elected = asyncio.Event()
        self._collecting = True
        #: Acquire answers taken in the dequeue, until the SDK asks (:meth:`take_leases`).
        self._kept = KeptLeases(pid, self._clock)

    def take_leases(self, leases: Leases) -> None:
        """Claim this process's execute rows with their tasks' leases (a node, never the
        gateway), answering the SDK's acquires from what the dequeue took."""
        self._kept.take(leases)

    # -- health -----------------------------------------------------------------

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

    # -- messages -------------------------------------------------------------

    def queues_of(self, channel: str, payload: str) -> frozenset[Queue]:
        """The queue a notification is for: its channel is the address, its payload the kind."""
        if channel == self._group_channel:
            return _GROUP_EXECUTE
        if channel == self._own_channel and payload == "execute":
            return _OWN_EXECUTE
        if channel == self._own_channel and payload == "unblock":
            return _OWN_UNBLOCK
        return EVERY_QUEUE

    async def _drain(self, queues: frozenset[Queue] = EVERY_QUEUE) -> None:
        """Claim the messages of ``queues`` and hand them to the SDK.

        The dequeues of several queues go out together (pipelined: their answers
        come back in one read, not one wake-up each). Each commits on its own
        (autocommit), so what one claimed is delivered even when another fails:
        its rows are gone from the outbox.
        """
        if not queues:
            return
        claimed = {queue: list[str]() for queue in QUEUE_ORDER if queue in queues}
        failure: BaseException | None = None
        leases = self._lease_room()
        try:
            claims = []
            for queue, into in claimed.items():
                claims.append(self._claim(queue, into, leases))
                if queue is not Queue.OWN_UNBLOCK:
                    leases = 0  # one budget per drain: the first execute queue's
            if len(claims) == 1:
                await claims[0]
            else:
                outcomes = await asyncio.gather(*claims, return_exceptions=True)
                failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
        except Exception as exc:
            failure = exc
        messages = [message for into in claimed.values() for message in into]
        if failure is not None:
            if isinstance(failure, Exception):
                self._lost(failure)
            self._hand_over(messages)
            raise failure
        self._found()
        self._hand_over(messages)

    def _hand_over(self, messages: list[str]) -> None:
        """Hand ``messages`` to the SDK, the tasks it starts for them eager: a node's acquire
        of the task an ``execute`` names leaves in this turn of the event loop."""
        with eager_tasks():
            for message in messages:
                self._deliver(message)

    async def _claim(self, queue: Queue, into: list[str], leases: int = 0) -> None:
        """Claim every row of ``queue`` into ``into``, a page at a time, paging on a full read.

        An execute queue's rows come with up to ``leases`` of their tasks acquired
        (:meth:`_claim_leasing`). Straight down the pipelined connection, as a request
        goes: a session and a cursor around each dequeue are coroutines and objects for
        nothing.
        """
        address = self._anycast if queue is Queue.GROUP_EXECUTE else self._unicast
        execute = self._pipeline.execute
        while True:
            if queue is Queue.OWN_UNBLOCK:
                rows = await execute(DEQUEUE_UNBLOCK_SQL, (address, self._limit))
                into.extend(unblock_message(str(row[0])) for row in rows)
            elif leases > 0 and self._kept.leases is not None:
                rows = await self._claim_leasing(address, into, leases, self._kept.leases)
                leases -= sum(1 for row in rows if row[2] is not None)
            else:
                rows = await execute(DEQUEUE_EXECUTE_SQL, (address, self._limit))
                into.extend(execute_message(str(row[0]), int(row[1])) for row in rows)
            if len(rows) < self._limit:
                return

    async def _claim_leasing(
        self, address: str, into: list[str], leases: int, taking: Leases
    ) -> list[tuple[object, ...]]:
        """One page of ``address``'s execute rows, the first ``leases`` tasks acquired.

        Each acquired task's answer is kept for the SDK's acquire; every row is handed
        over as an execute message all the same. A database without the function, or a
        role refused it, gets the plain dequeue from then on.
        """
        try:
            rows = await self._pipeline.execute(
                DEQUEUE_ACQUIRE_SQL, (address, self._limit, self._pid, taking.ttl_ms, leases)
            )
        except (*_NO_WRAPPER, errors.InsufficientPrivilege) as exc:
            self._kept.stop_taking()
            log.info(
                "asyncrpc.dequeue_acquire: %s; tasks are acquired one request each",
                _one_line(exc),
            )
            rows = await self._pipeline.execute(DEQUEUE_EXECUTE_SQL, (address, self._limit))
            into.extend(execute_message(str(row[0]), int(row[1])) for row in rows)
            return [(*row, None) for row in rows]
        for task, version, acquired in rows:
            into.append(execute_message(str(task), int(version)))
            if acquired is not None:
                self._kept.keep(str(task), int(version), str(acquired))
        return rows

    def _lease_room(self) -> int:
        """How many leases the next drain may take: the SDK's room, less the answers kept."""
        return self._kept.room()

    async def _pump_loop(self) -> None:
        """Drain what a wake-up was for, then wait for the next one or the tick (a full drain).

        A replica that does not listen for its group drains the group's queue at least
        once a tick, however often its own channel wakes it: wake-ups for this process
        alone must not starve its group's messages while the listener cannot take them.
        """
        tick = self._tick
        group_drained_at = self._clock()
        with contextlib.suppress(asyncio.CancelledError):
            while self._running:
                # Cleared before draining: a NOTIFY during the drain wakes the next pass.
                self._wake.clear()
                if not self.group_listener and self._clock() - group_drained_at >= tick:
                    self._due.add(Queue.GROUP_EXECUTE)
                queues, self._due = frozenset(self._due), set()
                failed = False
                try:
                    await self._drain(queues)
                    if Queue.GROUP_EXECUTE in queues:
                        group_drained_at = self._clock()
                except Exception as exc:
                    failed = True
                    self._due |= queues
                    if self._running:
                        log.warning("postgres drain failed: %s", _one_line(exc))
                quiet = self._listening and not failed
                tick = self._pacing.quiet_tick if quiet else self._tick
                wait = tick
                if not self.group_listener:
                    wait = min(tick, max(0.0, group_drained_at + tick - self._clock()))
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
                except TimeoutError:
                    self._due |= EVERY_QUEUE

    async def _listen_once(self) -> None:
        """Listen on this process's channel; between notifications, run for both locks.

        The channels are listened on on the pipelined connection itself, so a notification
        arrives with the answers to this process's statements, and the session locks (the
        timer driver's, the group listener's) live and die with that connection. The
        group's channel is listened on once this process holds the group's lock.
        """
        conn = await self._pipeline.listen((self._own_channel,), self._notified)
        try:
            log.info("postgres listening (uni=%s)", self._unicast)
            self._listening = True
            # Rows may have landed while the listener was down.
            self._due |= EVERY_QUEUE
            self._wake.set()
            while self._running and not conn.closed.is_set():
                await self._elect(conn)
                period = self._pacing.election * (1 + self._jitter() / 2)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(conn.closed.wait(), timeout=period)
            if conn.failure is not None and self._running:
                raise conn.failure
        finally:
            conn.on_notify = None
            self._listening = False
            self.group_listener = False
            self._stop_driving()

    def _notified(self, channel: str, payload: str) -> None:
        self._due |= self.queues_of(channel, payload)
        self._wake.set()

    # -- timers and retention -------------------------------------------------

    async def start(self) -> None:
        """Start the connector's pump and listener and, beside them, the timer loop."""
        started = bool(self._tasks)
        await super().start()
        if self._tasks and not started:
            self._tasks.append(asyncio.create_task(self._timer_loop()))

    @property
    def timers(self) -> str | None:
        """Who fires this database's timers, as far as this process knows."""
        if not self._drive_timers or not self._timer_drivers:
            return "not this process (refused): pg_cron or another process must"
        driver = self._timer_drivers[0].removeprefix("SELECT ")
        role = "the elected driver" if self.driving else "a backstop to the elected driver"
        return f"this process ({driver}), {role}"

    async def _elect(self, conn: PipelinedConnection) -> None:
        """Take the driver's lock and the group listener's where free, in one statement.

        The driver's lock is given up once this role may not fire timers. Holding the
        group's lock, this process listens on the group's channel, and drains the group's
        queue at once: rows may have landed while nobody listened.
        """
        if self.driving and not self._drive_timers:
            await conn.execute(UNLOCK_SQL, (TIMER_LOCK,))
            self._stop_driving()
        try_drive = self._drive_timers and not self.driving
        try_listen = not self.group_listener
        locks = [
            lock
            for lock, wanted in ((TIMER_LOCK, try_drive), (self._group_lock, try_listen))
            if wanted
        ]
        if not locks:
            return
        rows = await conn.execute(try_locks_sql(len(locks)), tuple(locks))
        taken = iter(rows[0] if rows else [False] * len(locks))
        drive = try_drive and next(taken) is True
        listen = try_listen and next(taken) is True
        if listen:
            await conn.execute(f'LISTEN "{self._group_channel}"')
            self.group_listener = True
            self._due.add(Queue.GROUP_EXECUTE)
            self._wake.set()
            log.info("this process listens for the messages to %s", self._anycast)
        if drive:
            self.driving = True
            self._elected.set()
            log.info(
                "this process drives the timers (%s) and retention",
                self._timer_drivers[0].removeprefix("SELECT "),
            )

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
                now = self._clock()
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
            log.debug("postgres timers or retention failed: %s", _one_line(exc))

    async def _fire_timers(self) -> None:
        """Fire due timers with the first driver this role may call; none left: pg_cron's job.

        A failure to reach the database propagates (the next round tries
        again); only a refusal moves on to the next driver.
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

    async def _collect(self) -> int:
        """Delete what the database's retention says is old, in batches; how many promises went.

        On a connection of its own, opened for the round: a round may take a while, and
        every other statement of this process waits behind one on the pipelined connection.
        """
        if not self._collecting:
            return 0
        deleted = 0
        conn = await self._sessions.dedicated()
        try:
            for _ in range(COLLECT_ROUND):
                row = await (await conn.execute(COLLECT_SQL, (COLLECT_BATCH,))).fetchone()
                batch = int(row[0]) if row is not None and row[0] is not None else 0
                deleted += batch
                if batch < COLLECT_BATCH:
                    break
        except _NO_WRAPPER:
            self._collecting = False
            log.info(
                "no retention in this database: settled promises stay "
                "(`asyncrpc postgres prepare --retain` sets one)"
            )
        except errors.InsufficientPrivilege as exc:
            self._collecting = False
            log.warning("asyncrpc.collect() refused, settled promises stay: %s", _one_line(exc))
        finally:
            with contextlib.suppress(Exception):
                await conn.close()
        if deleted:
            log.info("retention: deleted %d settled promises", deleted)
        return deleted

    # -- requests -------------------------------------------------------------

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        kept = self._kept.answer(req)
        if kept is not None:
            return kept
        attempt = 0
        while True:
            try:
                return await self._request(req)
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

    async def _request(self, req: str) -> str:
        """One request, through ``asyncrpc.rpc`` where the database has it, else resonate_rpc.

        As resonate-pg's ``send``: the body is bound as one parameter and never opened,
        and a failure is a :class:`ConnectorError` whose cause is the database's error.
        The statement goes straight down the pipelined connection
        (:meth:`PipelinedSessions.execute`): a request is the hot path, and a session
        and a cursor around it are two coroutines and an object each for nothing.
        """
        if self._stopped:
            raise ConnectorError(RuntimeError("connection has been stopped"))
        sql = self._rpc_sql
        try:
            try:
                rows = await self._pipeline.execute(sql, (req,))
            except (*_NO_WRAPPER, errors.InsufficientPrivilege) as exc:
                if sql == RPC_SQL:
                    raise
                if self._rpc_sql != RPC_SQL:
                    self._rpc_sql = RPC_SQL
                    log.info("%s: %s; requests go to resonate_rpc", sql, _one_line(exc))
                rows = await self._pipeline.execute(RPC_SQL, (req,))
        except Exception as exc:
            raise ConnectorError(exc) from exc
        if not rows or rows[0][0] is None:
            raise ConnectorError(RuntimeError("the database answered the request with no row"))
        return str(rows[0][0])


def _one_line(exc: BaseException) -> str:
    """An error as one line of a log: libpq's messages span several."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text
