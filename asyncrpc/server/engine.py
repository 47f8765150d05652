"""The server's core: apply a request, make it durable, then route what it caused.

One :class:`Engine` owns the state machine, the store and the router, and
runs everything on one event loop, so no request ever sees another half
applied. The order is the durability contract: apply, stage in the log,
commit, and only then release the response and the messages the request
produced. Requests that arrive in the same turn of the event loop share one
commit (:meth:`Engine.handle_grouped`; :meth:`Engine.answer` for the HTTP fast
lane), which is most of what a commit costs under load. Promises a committed
request settled then leave memory (their rows are on disk, :mod:`.history`),
so memory holds what is in flight.

When a commit fails (a full disk, an I/O error), the state in memory is
ahead of the disk, and nothing it holds may be told to anyone: the requests
of that commit get a 503, their messages are dropped, and the engine reads
its state back from the disk, so what failed never happened. It then keeps
serving reads and answers every change with a 503 that says why, until a
probe write succeeds (tried every :data:`WRITE_RETRY_MS`, by the timer and by
the next change that arrives); then it serves as before, with nothing to do
by hand. Only when the state cannot be read back does it call
``on_failure`` (the server process exits 1, and its next start recovers
from the disk).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec

from asyncrpc.protocol.states import PromiseState
from asyncrpc.server import fields, retention
from asyncrpc.server.history import WRITE_BATCH, PromiseRow
from asyncrpc.server.machine import Execute, Machine, Outgoing, ProtocolReply, Unblock
from asyncrpc.server.protocol import (
    ProtocolError,
    Request,
    error_envelope,
    parse_request,
    response,
)
from asyncrpc.server.router import ACK_TIMEOUT_MS, Message, Router, Stream
from asyncrpc.server.store import CommitFailed, Store, StoreError

logger = logging.getLogger("asyncrpc.server")

#: The kinds whose ``pid`` says that worker process is running (see Router.check_streams).
FROM_A_WORKER = frozenset({"task.acquire", "task.create", "task.heartbeat"})
#: The encoding of what the engine writes itself: a lease's request, its answer's data.
_encode = msgspec.json.Encoder().encode
#: How long after a failed snapshot the next is tried (ms).
SNAPSHOT_RETRY_MS = 10_000
#: How often the timer loop looks for due promise timeouts, leases and retries.
TICK_INTERVAL_S = 0.2
#: How long after a failed write the disk is tried again (ms).
WRITE_RETRY_MS = 1_000
#: The kinds no step of a flow waits for: a task's suspend (the step it awaits is already
#: another process's work) and a listener's registration (its caller waits for the unblock,
#: not for this answer). Behind the fast lane (:meth:`Engine.answer`) they are applied after
#: the next commit of other requests, or :data:`BESIDE_THE_PATH_WAIT_S` after they came if
#: none comes first, so that the next steps of flows (the acquire of the process the suspend's
#: fenced create pushed work to, which comes right behind it) wait neither for their work nor
#: for their answers' writes.
BESIDE_THE_PATH = frozenset({"task.suspend", "promise.register_listener"})
#: How long a request :data:`BESIDE_THE_PATH` waits at most for another's commit (s).
BESIDE_THE_PATH_WAIT_S = 0.001
#: How long a suspend whose awaited promises are all pending waits, behind the fast lane,
#: for one of them to settle before it is applied (s). A suspend applied once what it awaits
#: has settled is answered 300 with that promise as preload, and its task goes on in the
#: process that holds it: no resume message, no second acquire, no callback written. An
#: await chain's child settles within milliseconds; a task that awaits longer is suspended
#: after this wait, as if its suspend had come later. Far below a lease (seconds).
SUSPEND_HOLD_S = 0.1
#: The kinds that wait so: those :data:`BESIDE_THE_PATH`. A listener's registration applied
#: once its promise has settled is answered with the settled promise (the caller's result, in
#: place of the ``unblock`` a registered listener gets) and registers nothing.
WAITS_FOR_A_SETTLEMENT = BESIDE_THE_PATH
#: At most this many requests wait so at once; more are applied as they come.
MAX_HELD = 10_000
#: The kinds that never change the state: served while writes are refused.
READ_KINDS = frozenset(
    {
        "promise.get",
        "promise.search",
        "task.get",
        "task.search",
        "task.acquisitions",
        "schedule.get",
        "schedule.search",
    }
)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Reply(NamedTuple):
    """An answer: the HTTP status (``head.status``), the envelope, and why it failed, if it did.

    A named tuple, as the other records made for every request are: a frozen dataclass
    takes four times as long to build.

    ``kind`` is the request's kind as sent (None when the body was not a request): the
    server's metrics count answers by it.
    ``request`` is the request answered (None when the body was not one), so that a
    commit that fails after the answer was made can answer it with a 503 instead.
    """

    status: int
    body: bytes
    detail: str | None = None
    kind: str | None = None
    request: Request | None = None


def _deliver(held: list[tuple[Reply, Callable[[Reply], None]]]) -> None:
    for reply, deliver in held:
        deliver(reply)


class _Hold:
    """A suspend or a listen waiting for a promise it awaits to settle (:meth:`Engine.answer`)."""

    __slots__ = ("awaited", "body", "connection", "deadline", "deliver", "done", "request")

    def __init__(
        self,
        deadline: float,
        body: bytes,
        request: Request,
        deliver: Callable[[Reply], None],
        awaited: tuple[str, ...],
        connection: object | None,
    ) -> None:
        self.connection = connection
        self.deadline = deadline
        self.body = body
        self.request = request
        self.deliver = deliver
        self.awaited = awaited
        #: Applied already (a promise it awaits settled, or its callers' order asked for it).
        self.done = False


def _awaited(kind: str, data: dict[str, Any]) -> tuple[str, ...] | None:
    """The promise ids a suspend's actions or a listener await; None when not plain ids."""
    if kind == "promise.register_listener":
        promise_id = data.get("awaited")
        return (promise_id,) if isinstance(promise_id, str) else None
    actions = data.get("actions")
    if not isinstance(actions, list) or not actions:
        return None
    awaited = []
    for action in actions:
        inner = action.get("data") if isinstance(action, dict) else None
        promise_id = inner.get("awaited") if isinstance(inner, dict) else None
        if not isinstance(promise_id, str):
            return None
        awaited.append(promise_id)
    return tuple(awaited)


class Engine:
    """State machine + durability + routing, driven by requests and a timer."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], int] = wall_clock_ms,
        on_failure: Callable[[], None] = lambda: None,
        retain_ms: int | None = None,
        ack_timeout_ms: int = ACK_TIMEOUT_MS,
        background_snapshots: bool = False,
        beside_the_path_wait_s: float = BESIDE_THE_PATH_WAIT_S,
        suspend_hold_s: float = SUSPEND_HOLD_S,
    ) -> None:
        self.state = Machine(store.history)
        #: How long a settled invocation is kept (None: forever); see :mod:`retention`.
        self.retain_ms = retain_ms
        #: Write snapshots from a forked child (the server does; in-process tests need not).
        self.background_snapshots = background_snapshots and store.path != ":memory:"
        self._next_gc = 0
        self._snapshot_after = 0
        self.on_failure = on_failure
        #: Why changes are refused (a failed commit), or None while the disk takes writes.
        self.failed: CommitFailed | None = None
        #: The state could not be read back after a failed commit: nothing is served any more.
        self.fatal = False
        #: When the disk is tried again while changes are refused (ms).
        self._retry_at = 0
        self.store = store
        self.clock = clock
        self.router = Router(
            clock,
            lambda task_id, version: self.state.is_pending(task_id, version),
            lambda: self.state.pending_dispatches(),
            ack_timeout_ms,
            holds=lambda pid, task_id, version: self.state.holds(pid, task_id, version),
            on_abandoned=self._hand_back,
        )
        self._timer: asyncio.Task[None] | None = None
        #: Messages of applied requests, held until their commit.
        self._unrouted: list[Outgoing] = []
        #: Executes that carry a lease taken in the commit under way, and their streams.
        self._leased: list[tuple[Stream, Message]] = []
        #: :meth:`stop` has begun: nothing is changed any more.
        self._stopping = False
        #: Promises staged requests settled: they leave memory once committed.
        self._settled: list[str] = []
        #: A retention backlog remains: the timer loop runs the next batch at once.
        self.gc_backlog = False
        #: A commit of the requests of the current loop turn is scheduled.
        self._commit_due = False
        #: A write of the settled promises' rows that wait is scheduled.
        self._rows_due = False
        #: When the timer tries them again after a failed write (ms).
        self._rows_retry_at = 0
        #: Resolved by that commit, for the requests that await it (:meth:`handle_grouped`).
        self._batch: asyncio.Future[None] | None = None
        #: Replies held for that commit, and who gets each once it is durable (:meth:`answer`).
        self._held: list[tuple[Reply, Callable[[Reply], None]]] = []
        #: Requests applied after the next commit (:data:`BESIDE_THE_PATH`), in the order
        #: they came: the body, the request (or the reply to a body that is none), who gets it.
        self._later: list[tuple[bytes, Request | Reply, Callable[[Reply], None]]] = []
        #: Applies them when no commit comes first, after this long (s).
        self._later_timer: asyncio.TimerHandle | None = None
        self._later_wait_s = beside_the_path_wait_s
        #: Suspends and listens waiting for what they await (:data:`SUSPEND_HOLD_S`): in the
        #: order they came, which is their deadlines' order, and by the promise ids they await.
        self._holds: deque[_Hold] = deque()
        self._holding: dict[str, list[_Hold]] = {}
        #: Applies the first of them that is still waiting at its deadline.
        self._hold_timer: asyncio.TimerHandle | None = None
        self._hold_s = suspend_hold_s
        self.recovered_entries = 0
        self._recover(self.state)

    # -- requests ------------------------------------------------------------

    def handle(self, body: bytes) -> Reply:
        """Answer one ``POST /`` body, committed on its own before it returns."""
        reply = self.apply(body)
        try:
            self.commit()
        except CommitFailed:
            return self._unavailable(reply.request)
        if self.store.history.unwritten >= WRITE_BATCH:
            self._write_rows()
        return reply

    async def handle_grouped(self, body: bytes) -> Reply:
        """Answer one ``POST /`` body, sharing one commit with the requests of this loop turn.

        A read waits for a commit too when one is pending, so no answer ever
        shows a change that a crash could still undo.
        """
        reply = self.apply(body)
        if self._commit_due or self.store.staged:
            try:
                await self._next_commit()
            except CommitFailed:
                return self._unavailable(reply.request)
        return reply

    def answer(
        self,
        body: bytes,
        deliver: Callable[[Reply], None],
        behind: bool = False,
        connection: object | None = None,
    ) -> None:
        """:meth:`handle_grouped` without a coroutine: ``deliver`` gets the reply once it may leave.

        That is at once for a request that waits for no commit, else right after the
        commit of this loop turn (in the order the requests came), or the 503 of a failed
        commit. The server's HTTP fast lane answers ``POST /`` through it.

        A request of a kind :data:`BESIDE_THE_PATH` is applied after the next commit
        of other requests, or once ``beside_the_path_wait_s`` is over. ``behind``
        says that an earlier request on the caller's connection is not answered yet:
        while one waits to be applied later, so does this one, so that a connection's
        requests are applied in the order they were sent. ``connection`` stands for the
        caller connection's unanswered requests (None: unknown).

        A suspend whose awaited promises are all pending, or a listen on a pending promise,
        waits up to ``suspend_hold_s`` for one of them to settle (:data:`SUSPEND_HOLD_S`),
        and is applied right after the commit that settles it, ahead of that commit's
        answers. A request behind it on its connection lets it be applied first, as
        requests :data:`BESIDE_THE_PATH` are, and waits behind it.
        """
        parsed = self._parse(body)
        if behind and self._holds:
            self._release_holds(connection)
        waits_behind = behind and bool(self._later)
        if waits_behind or (isinstance(parsed, Request) and parsed.kind in BESIDE_THE_PATH):
            if (
                not waits_behind
                and isinstance(parsed, Request)
                and self._hold(body, parsed, deliver, connection)
            ):
                return
            self._later.append((body, parsed, deliver))
            if self._later_timer is None:
                self._later_timer = asyncio.get_running_loop().call_later(
                    self._later_wait_s, self._answer_later
                )
            return
        self._answer(body, parsed, deliver)

    def _answer(
        self, body: bytes, parsed: Request | Reply, deliver: Callable[[Reply], None]
    ) -> None:
        reply = parsed if isinstance(parsed, Reply) else self._apply_request(body, parsed)
        if not self._commit_due and not self.store.staged:
            deliver(reply)
            return
        self._schedule_commit()
        self._held.append((reply, deliver))

    def _answer_later(self) -> None:
        """Apply the requests held for after the next commit (once it is done)."""
        if self._commit_due:
            asyncio.get_running_loop().call_soon(self._answer_later)
            return
        if self._later_timer is not None:
            self._later_timer.cancel()
            self._later_timer = None
        later, self._later = self._later, []
        for body, parsed, deliver in later:
            self._answer(body, parsed, deliver)

    def closed(self, connection: object) -> None:
        """The caller's connection is gone: its waiting requests are applied as they came.

        Nobody reads their answers; what counts is the task's state. Suspended, its
        task resumes on whichever process of its group is there once its child settles,
        where a 300 would leave it acquired by a process that is gone until its lease ends.
        """
        if self._holds:
            self._release_holds(connection)

    def _hold(
        self,
        body: bytes,
        request: Request,
        deliver: Callable[[Reply], None],
        connection: object | None,
    ) -> bool:
        """Keep a suspend or a listen (:data:`WAITS_FOR_A_SETTLEMENT`) until a promise it awaits
        settles, or until its deadline; whether it is kept."""
        if (
            request.kind not in WAITS_FOR_A_SETTLEMENT
            or self._hold_s <= 0
            or self.failed is not None
            or len(self._holds) >= MAX_HELD
        ):
            return False
        awaited = _awaited(request.kind, request.data)
        if awaited is None:
            return False
        now = self.clock()
        promises = self.state.promises
        for promise_id in awaited:
            promise = promises.get(promise_id)
            if promise is None or not promise.is_open(now):
                return False
        loop = asyncio.get_running_loop()
        hold = _Hold(loop.time() + self._hold_s, body, request, deliver, awaited, connection)
        self._holds.append(hold)
        for promise_id in awaited:
            self._holding.setdefault(promise_id, []).append(hold)
        if self._hold_timer is None:
            self._hold_timer = loop.call_at(hold.deadline, self._holds_due)
        return True

    def _unhold(self, hold: _Hold) -> None:
        hold.done = True
        for promise_id in hold.awaited:
            holds = self._holding.get(promise_id)
            if holds is not None:
                with contextlib.suppress(ValueError):
                    holds.remove(hold)
                if not holds:
                    del self._holding[promise_id]

    def _drop_done(self) -> None:
        """Drop the applied requests from the head of the waiting ones (the next deadline's)."""
        holds = self._holds
        while holds and holds[0].done:
            holds.popleft()

    def _release_settled(self, settled: list[str]) -> None:
        """Apply the requests that await a promise this commit settled: a suspend is answered
        300 with it as preload, a listen with the settled promise."""
        released = []
        for promise_id in settled:
            for hold in self._holding.get(promise_id, ()):
                released.append(hold)
        for hold in released:
            if not hold.done:
                self._unhold(hold)
                self._answer(hold.body, hold.request, hold.deliver)
        self._drop_done()

    def _release_holds(self, connection: object | None) -> None:
        """The requests waiting on ``connection`` (None: all) join those applied after the next
        commit, in the order they came."""
        for hold in self._holds:
            if not hold.done and (connection is None or hold.connection is connection):
                self._unhold(hold)
                self._later.append((hold.body, hold.request, hold.deliver))
        self._drop_done()
        if self._later and self._later_timer is None:
            self._later_timer = asyncio.get_running_loop().call_later(
                self._later_wait_s, self._answer_later
            )

    def _holds_due(self) -> None:
        """Apply the requests whose wait is over, as if they came now: a suspend suspends its
        task (200), a listen registers its listener."""
        self._hold_timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        holds = self._holds
        while holds and (holds[0].done or holds[0].deadline <= now):
            hold = holds.popleft()
            if not hold.done:
                self._unhold(hold)
                self._answer(hold.body, hold.request, hold.deliver)
        self._drop_done()
        if holds:
            self._hold_timer = loop.call_at(holds[0].deadline, self._holds_due)

    def _unavailable(self, request: Request | None) -> Reply:
        """A 503 for ``request``, in its envelope (its kind and corrId), saying why."""
        if self.fatal:
            detail = f"the server's database failed and the server is stopping: {self.failed}"
        else:
            detail = (
                f"the server cannot write its database ({self.failed}); it refuses changes "
                f"until it can, trying again every {WRITE_RETRY_MS // 1000}s, and serves reads"
            )
        if request is None:
            return Reply(503, error_envelope(503), detail)
        body = response(request.kind, request.corr_id, request.version, 503, "error")
        return Reply(503, body, detail, request.kind, request)

    def apply(self, body: bytes) -> Reply:
        """Apply one request and stage it; durable and routed only after :meth:`commit`."""
        parsed = self._parse(body)
        return parsed if isinstance(parsed, Reply) else self._apply_request(body, parsed)

    @staticmethod
    def _parse(body: bytes) -> Request | Reply:
        """The request ``body`` holds, or the reply to a body that holds none."""
        try:
            return parse_request(body)
        except ProtocolError as exc:
            envelope = error_envelope(exc.status, exc.kind, exc.corr_id)
            return Reply(exc.status, envelope, exc.message, exc.kind)

    def _apply_request(self, body: bytes, request: Request) -> Reply:
        now = self.clock()
        if self.failed is not None and not self._may_apply(request.kind, now):
            return self._unavailable(request)
        try:
            answer = self._apply(
                now, body, request.kind, request.data, request.corr_id, request.version
            )
        except sqlite3.Error as exc:  # a read of the history failed: the disk fails
            self.store.drop_staged()
            self._fail(CommitFailed(f"reading {self.store.path!r}: {exc}"))
            return self._unavailable(request)
        logger.debug("%s -> %s %s", request.kind, answer.status, answer.detail or "")
        envelope = response(
            request.kind, request.corr_id, request.version, answer.status, answer.data
        )
        return Reply(answer.status, envelope, answer.detail, request.kind, request)

    def _may_apply(self, kind: Any, now: int) -> bool:
        """While changes are refused: a read, or the disk takes writes again."""
        if self.fatal:
            return False
        return kind in READ_KINDS or self._writable_again(now)

    def _writable_again(self, now: int) -> bool:
        """Whether the disk takes writes again (tried at most every WRITE_RETRY_MS)."""
        if self.fatal or now < self._retry_at:
            return False
        try:
            self.store.probe()
        except CommitFailed as exc:
            self._retry_at = now + WRITE_RETRY_MS
            self.failed = exc
            return False
        logger.warning("the database takes writes again; serving changes as before")
        self.failed = None
        return True

    def commit(self) -> None:
        """Make everything staged durable, then release the messages it caused.

        Raises :class:`CommitFailed` when the write fails: the state is then read
        back from the disk and changes are refused until the disk takes writes.
        """
        if self.fatal:
            assert self.failed is not None
            raise self.failed
        if self._unrouted and self.failed is None and self.router.leasing:
            self._take_leases()
        try:
            self.store.commit()
        except CommitFailed as exc:
            self._fail(exc)
            raise
        settled: list[str] = []
        if self._settled:
            settled, self._settled = self._settled, []
            self.state.evict(settled)
        unrouted, self._unrouted = self._unrouted, []
        if self._leased:
            leased, self._leased = self._leased, []
            for stream, message in leased:
                self.router.deliver_leased(stream, message)
        self._route(unrouted)
        self._maybe_snapshot()
        if settled and self._holding:
            self._release_settled(settled)

    def _fail(self, exc: CommitFailed) -> None:
        """Undo what did not reach the disk: its messages go nowhere, the state is the disk's.

        The requests waiting for the next group commit had their entries in this
        one (a timer tick commits whatever is staged), so they are answered 503 too,
        those that await it (:meth:`handle_grouped`) and those held for it (:meth:`answer`).
        """
        self.failed = exc
        self._unrouted = []
        self._leased = []
        self._commit_due = False
        batch, self._batch = self._batch, None
        held, self._held = self._held, []
        if batch is not None and not batch.done():
            batch.set_exception(exc)
        self._retry_at = self.clock() + WRITE_RETRY_MS
        self._read_back(exc)
        for reply, deliver in held:
            deliver(self._unavailable(reply.request))

    def _read_back(self, exc: CommitFailed) -> None:
        """The state as the disk holds it, after ``exc``; fatal when it cannot be read."""
        try:
            self._settled = []
            self.store.history.reload()
            state = Machine(self.store.history)
            self._recover(state)
        except (StoreError, sqlite3.Error, OSError) as error:
            logger.critical(
                "%s, and the state cannot be read back from the disk (%s); stopping: "
                "the next start recovers what the disk holds",
                exc,
                error,
            )
            self.fatal = True
            self.on_failure()
            return
        self.state = state
        self.store.relieve()
        logger.error(
            "%s; nothing of it was acknowledged, the state is the disk's again, and changes "
            "are refused (503) until the disk takes writes (tried every %ds); reads are served",
            exc,
            WRITE_RETRY_MS // 1000,
        )

    # -- timers --------------------------------------------------------------

    def tick(self) -> None:
        """Fire whatever is due: promise timeouts, task retries and leases, schedule runs.

        While changes are refused, only the disk is tried again (nothing fires until
        it takes writes; what came due meanwhile fires then).
        """
        now = self.clock()
        self.router.check_streams()
        if self.failed is not None and not self._writable_again(now):
            return
        if now >= self._rows_retry_at:
            self._write_rows()  # retention, below, chooses among the rows written
        try:
            written = self.store.poll_snapshot()
        except (sqlite3.Error, OSError):
            logger.exception("storing the snapshot failed")
            written = False
        if written is False:
            logger.error("the snapshot was not written; the log keeps everything, retrying later")
            self._snapshot_failed()
        due = self.state.next_due()
        if due is not None and due <= now:
            self.state.changed = False
            self.state.tick(now)
            self._take_outgoing()
            if self.state.changed:
                self._stage(now, None)
        self._collect(now)
        if self.store.staged or self._unrouted:
            self.commit()

    def _collect(self, now: int) -> None:
        """One retention batch when due; the next one at once while a backlog remains."""
        if self.retain_ms is None or now < self._next_gc:
            return
        gone = retention.choose(self.state, now - self.retain_ms)
        if gone:
            self.state.forget(gone)
            self.store.stage(now, retention.gc_request(gone), forgotten=gone)
            logger.debug("retention: forgetting %d settled promises", len(gone))
        self.gc_backlog = len(gone) == retention.GC_BATCH
        interval = min(retention.GC_INTERVAL_MS, self.retain_ms)
        self._next_gc = now if self.gc_backlog else now + interval

    async def run_timers(self, interval: float = TICK_INTERVAL_S) -> None:
        """Tick every ``interval``; back to back while retention has a backlog, yielding to
        the requests that wait between two batches."""
        while True:
            try:
                self.tick()
            except CommitFailed:
                if self.fatal:
                    return
            except Exception:
                logger.exception("timer tick failed")
            await asyncio.sleep(0 if self.gc_backlog else interval)

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().create_task(self.run_timers())

    async def stop(self) -> None:
        self._stopping = True
        if self._later_timer is not None:
            # Never applied nor answered: their callers send them again to the next server.
            self._later_timer.cancel()
            self._later_timer = None
            self._later = []
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        self._holds.clear()
        self._holding.clear()
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        if self.fatal:
            # What is in memory never reached the disk: keep the disk's.
            self.store.close(write_rows=False)
            return
        try:
            self.store.write_snapshot(self.state)
        except (CommitFailed, sqlite3.Error, OSError) as exc:
            logger.error("no snapshot at shutdown (%s); the log holds everything", exc)
            self.store.close()
            return
        in_flight = len(self.state.promises)
        self.store.close()
        logger.info("stopped; %d promises in flight saved to %s", in_flight, self.store.path)

    # -- internals -----------------------------------------------------------

    def _apply(
        self, now: int, body: bytes, kind: Any, data: dict[str, Any], corr_id: Any, version: str
    ) -> ProtocolReply:
        """Run one request through the machine; stage it when it changed something."""
        self.state.changed = False
        try:
            answer = self.state.apply(now, kind, data, corr_id, version)
        except sqlite3.Error:
            raise
        except Exception:
            logger.exception("state machine failed on %s", kind)
            answer = ProtocolReply(500, "error", f"internal error while applying {kind}")
        self._take_outgoing()
        if self.state.changed:
            self._stage(now, body)
        if kind in FROM_A_WORKER:
            pid = data.get("pid")
            if isinstance(pid, str):
                self.router.heard_from(pid)
        elif kind == "task.fence" and self.router.leasing:
            # A step's requests name its task, not its process: its lease names that.
            task_id = data.get("id")
            holder = self.state.holder(task_id) if isinstance(task_id, str) else None
            if holder is not None:
                self.router.heard_from(holder)
        return answer

    def _take_leases(self) -> None:
        """Take, in the commit under way, the leases of the executes that will carry them.

        An execute to a stream that takes leases (:meth:`Router.lessee`) is sent with
        its task acquired for that stream's process: a ``task.acquire`` applied here,
        logged and committed with the rest, whose answer the message carries. The
        process then answers its SDK's acquire itself (:mod:`asyncrpc.network.leases`).
        An acquire the state refuses leaves its execute plain.
        """
        now = self.clock()
        pending, self._unrouted = self._unrouted, []
        unrouted: list[Outgoing] = []
        for message in pending:
            if isinstance(message, Execute) and self.state.is_pending(
                message.task_id, message.version
            ):
                stream = self.router.lessee(message.address)
                if stream is not None:
                    acquired = self._acquire_for(stream, message, now)
                    if acquired is not None:
                        leased = Message.leased(message.task_id, message.version, acquired)
                        self._leased.append((stream, leased))
                        continue
            unrouted.append(message)
        self._unrouted = unrouted + self._unrouted  # and any the acquires caused

    def _acquire_for(self, stream: Stream, execute: Execute, now: int) -> bytes | None:
        """Acquire ``execute``'s task for ``stream``'s process; the answer's ``data``, or None."""
        data = {
            "id": execute.task_id,
            "version": execute.version,
            "pid": stream.pid,
            "ttl": stream.lease_ms,
        }
        answer = self._apply_own(now, "task.acquire", data)
        return None if answer is None else _encode(answer.data)

    def _apply_own(self, now: int, kind: str, data: dict[str, Any]) -> ProtocolReply | None:
        """Apply a request the engine makes itself, logged like any other; None if it changed
        nothing. Unlike a process's request, it says nothing of whether that process runs."""
        self.state.changed = False
        answer = self.state.apply(now, kind, data)
        self._take_outgoing()
        if answer.status != 200 or not self.state.changed:
            return None
        self._stage(now, _encode({"kind": kind, "head": {}, "data": data}))
        return answer

    def _hand_back(self, task_id: str, version: int) -> None:
        """Release a lease taken for a process whose stream died before it took it.

        The task is pending again and its ``execute`` goes out once that is committed,
        instead of when the lease runs out.
        """
        if self.failed is not None or self._stopping:
            return  # the lease runs out, as any lease of a process that is gone
        data = {"id": task_id, "version": version}
        if self._apply_own(self.clock(), "task.release", data) is not None:
            self._schedule_commit()

    def _stage(self, now: int, body: bytes | None) -> None:
        """Log a change, with the rows of the promises it settled."""
        settled = self.state.take_settled()
        self.store.stage(now, body, settled)
        self._settled.extend(done.promise.id for done in settled)

    def _take_outgoing(self) -> None:
        if self.state.outgoing:
            self._unrouted.extend(self.state.outgoing)
            self.state.outgoing = []

    def _schedule_commit(self) -> None:
        if not self._commit_due:
            self._commit_due = True
            asyncio.get_running_loop().call_soon(self._commit_batch)

    def _next_commit(self) -> asyncio.Future[None]:
        self._schedule_commit()
        if self._batch is None:
            self._batch = asyncio.get_running_loop().create_future()
        return self._batch

    def _commit_batch(self) -> None:
        if not self._commit_due:
            return
        self._commit_due = False
        batch, self._batch = self._batch, None
        held, self._held = self._held, []
        queued = self.router.queued
        try:
            self.commit()
        except CommitFailed as exc:
            if batch is not None:
                batch.set_exception(exc)
            for reply, deliver in held:
                deliver(self._unavailable(reply.request))
            return
        if batch is not None:
            batch.set_result(None)
        if held and self.router.queued != queued:
            # A message leaves before the answers of its commit: it is the next step of a
            # flow (the work for another process), an answer only lets its caller go on.
            # The router wrote most of them in this turn already; those it queued are
            # written by their streams' writers, woken by them, on the next turn: the
            # answers follow them there.
            asyncio.get_running_loop().call_soon(_deliver, held)
        else:
            _deliver(held)
        if self._later:
            asyncio.get_running_loop().call_soon(self._answer_later)
        if self.store.history.unwritten >= WRITE_BATCH and not self._rows_due:
            # After the answers: no request waits for the rows (see history.py).
            self._rows_due = True
            asyncio.get_running_loop().call_soon(self._write_rows)

    def _write_rows(self) -> None:
        """Write the rows of settled promises that wait (:meth:`History.write
        <asyncrpc.server.history.History.write>`); a failure leaves them waiting for the next
        try, at the next batch or at a timer tick :data:`WRITE_RETRY_MS` later (the log holds
        their settlements)."""
        self._rows_due = False
        if self.fatal:
            return
        try:
            self.store.history.write()
        except sqlite3.Error as exc:
            self._rows_retry_at = self.clock() + WRITE_RETRY_MS
            logger.error(
                "writing %d settled promises to %r failed (%s); they stay in memory and are "
                "tried again",
                self.store.history.unwritten,
                self.store.path,
                exc,
            )

    def _route(self, outgoing: list[Outgoing]) -> None:
        for message in outgoing:
            if isinstance(message, Execute):
                # A task settled or taken since its execute was staged needs no worker.
                if self.state.is_pending(message.task_id, message.version):
                    execute = Message.execute(message.task_id, message.version)
                    self.router.deliver(message.address, execute)
            elif isinstance(message, Unblock):
                self.router.deliver(message.address, Message.unblock(message.promise))

    def _maybe_snapshot(self) -> None:
        """Compact the log when it is long; a failure loses nothing and is tried again later."""
        store = self.store
        if store.snapshotting or not store.needs_snapshot(len(self.state.promises)):
            return
        if self.clock() < self._snapshot_after:
            return
        try:
            if self.background_snapshots:
                store.begin_snapshot(self.state)
            else:
                store.write_snapshot(self.state)
        except (sqlite3.Error, OSError):
            logger.exception("snapshot failed; the log keeps everything, retrying later")
            self._snapshot_failed()

    def _snapshot_failed(self) -> None:
        self._snapshot_after = self.clock() + SNAPSHOT_RETRY_MS

    def _recover(self, state: Machine) -> None:
        """Load the snapshot into ``state`` and replay the log after it; no message is sent.

        The replay sees the history as of the snapshot (:meth:`History.replaying`),
        as the requests did when they first ran; what they settled is on disk
        already and leaves memory at the end. An older format's database is
        recovered whole and written as this format (:meth:`Store.finish_upgrade`).
        Work that was waiting is handed out again when workers reconnect
        (the router gives a connecting stream every pending task of its group).
        """
        history = self.store.history
        try:
            seq = self.store.load_snapshot(state)
            history.replaying(seq)
            #: The rows of the promises the replay settled, by id.
            rows: dict[str, PromiseRow] = {}
            for entry in self.store.log_after(seq):
                history.at(entry.seq)
                self._replay(state, entry.seq, entry.at, entry.request)
                for done in state.take_settled():
                    rows[done.promise.id] = done.row(entry.seq)
            history.replayed()
            if self.store.upgrading is not None:
                self.store.finish_upgrade(state)
            # Those a crash (or a failed write) kept from the table wait to be written again;
            # a promise retention forgot during the replay has left memory and has no row.
            settled = [
                row
                for promise_id, row in rows.items()
                if (promise := state.promises.get(promise_id)) is not None
                and promise.state is not PromiseState.PENDING
            ]
            history.defer(history.missing(settled))
            state.settled.clear()
            state.evict_settled()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.store.path!r} is damaged ({exc}); restore it from a backup, "
                "or move it away to start empty"
            ) from None

    def _replay(self, state: Machine, seq: int, at: int, body: bytes | None) -> None:
        """Apply one log entry again; one that does not parse is a damaged database."""
        if body is None:
            state.tick(at)
        else:
            try:
                request = parse_request(body, bounded=False)
            except ProtocolError:
                raise StoreError(
                    f"log entry {seq} in {self.store.path!r} is not a request ({body[:60]!r}); "
                    "the database is damaged: restore it from a backup, or move it away"
                ) from None
            if request.kind == retention.GC_KIND:
                ids = request.data.get("ids")
                if isinstance(ids, list):
                    state.forget(str(promise_id) for promise_id in ids)
                else:  # an older format's batch, replayed with every promise in memory
                    settled_before = fields.integer(request.data, "settledBefore") or 0
                    limit = fields.integer(request.data, "limit") or 0
                    retention.collect_in_memory(state, settled_before, limit)
            else:
                with contextlib.suppress(Exception):
                    state.apply(at, request.kind, request.data, request.corr_id, request.version)
        state.outgoing.clear()
        self.recovered_entries += 1
