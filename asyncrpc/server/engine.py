"""The server's core: apply a request, make it durable, then route what it caused.

One :class:`Engine` owns the state machine, the store and the router, and
runs everything on one event loop, so no request ever sees another half
applied. The order is the durability contract: apply, stage in the log,
commit, and only then release the response and the messages the request
produced. Requests that arrive in the same turn of the event loop share one
commit (:meth:`Engine.handle_grouped`), which is most of what a commit costs
under load.

When a commit fails, the state in memory is ahead of the disk, and nothing
it holds may be told to anyone: the engine answers every later request with
503, stops routing, skips the snapshot at shutdown, and calls ``on_failure``
(the server process then exits 1, and its next start recovers from the disk).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asyncrpc.server import fields, retention
from asyncrpc.server.machine import Answer, Execute, Machine, Outgoing, Unblock
from asyncrpc.server.protocol import ProtocolError, error_envelope, parse_request, response
from asyncrpc.server.router import ACK_TIMEOUT_MS, Message, Router
from asyncrpc.server.store import CommitFailed, Store, StoreError

logger = logging.getLogger("asyncrpc.server")

#: The kinds whose ``pid`` says that worker process is running (see Router.check_streams).
FROM_A_WORKER = frozenset({"task.acquire", "task.create", "task.heartbeat"})
#: How long after a failed snapshot the next is tried (ms).
SNAPSHOT_RETRY_MS = 10_000
#: How often the timer loop looks for due promise timeouts, leases and retries.
TICK_INTERVAL_S = 0.2


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Reply:
    """An answer: the HTTP status (``head.status``), the envelope, and why it failed, if it did."""

    status: int
    body: bytes
    detail: str | None = None


def _deliver(held: list[tuple[Reply, Callable[[Reply], None]]]) -> None:
    for reply, deliver in held:
        deliver(reply)


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
    ) -> None:
        self.state = Machine()
        #: How long a settled invocation is kept (None: forever); see :mod:`retention`.
        self.retain_ms = retain_ms
        #: Write snapshots from a forked child (the server does; in-process tests need not).
        self.background_snapshots = background_snapshots and store.path != ":memory:"
        self._next_gc = 0
        self._snapshot_after = 0
        self.on_failure = on_failure
        #: Why the engine stopped answering (a failed commit), or None while it is sound.
        self.failed: CommitFailed | None = None
        self.store = store
        self.clock = clock
        self.router = Router(
            clock, self.state.is_pending, self.state.pending_dispatches, ack_timeout_ms
        )
        self._timer: asyncio.Task[None] | None = None
        #: Messages of applied requests, held until their commit.
        self._unrouted: list[Outgoing] = []
        #: A commit of the requests of the current loop turn is scheduled.
        self._commit_due = False
        #: Resolved by that commit, for the requests that await it (:meth:`handle_grouped`).
        self._batch: asyncio.Future[None] | None = None
        #: Replies held for that commit, and who gets each once it is durable (:meth:`answer`).
        self._held: list[tuple[Reply, Callable[[Reply], None]]] = []
        self.recovered_entries = 0
        self._recover()

    # -- requests ------------------------------------------------------------

    def handle(self, body: bytes) -> Reply:
        """Answer one ``POST /`` body, committed on its own before it returns."""
        reply = self.apply(body)
        try:
            self.commit()
        except CommitFailed:
            return self._unavailable()
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
                return self._unavailable()
        return reply

    def answer(self, body: bytes, deliver: Callable[[Reply], None]) -> None:
        """:meth:`handle_grouped` without a coroutine: ``deliver`` gets the reply once it may leave.

        That is at once for a request that waits for no commit, else right after the
        commit of this loop turn (in the order the requests came), or the 503 of a failed
        commit. The server's HTTP fast lane answers ``POST /`` through it.
        """
        reply = self.apply(body)
        if not self._commit_due and not self.store.staged:
            deliver(reply)
            return
        self._schedule_commit()
        self._held.append((reply, deliver))

    def _unavailable(self) -> Reply:
        return Reply(503, error_envelope(503), f"the server's store failed: {self.failed}")

    def apply(self, body: bytes) -> Reply:
        """Apply one request and stage it; durable and routed only after :meth:`commit`."""
        if self.failed is not None:
            return self._unavailable()
        try:
            request = parse_request(body)
        except ProtocolError as exc:
            envelope = error_envelope(exc.status, exc.kind, exc.corr_id)
            return Reply(exc.status, envelope, exc.message)
        now = self.clock()
        answer = self._apply(
            now, body, request.kind, request.data, request.corr_id, request.version
        )
        logger.debug("%s -> %s %s", request.kind, answer.status, answer.detail or "")
        envelope = response(
            request.kind, request.corr_id, request.version, answer.status, answer.data
        )
        return Reply(answer.status, envelope, answer.detail)

    def commit(self) -> None:
        """Make everything staged durable, then release the messages it caused.

        Raises :class:`CommitFailed` (and the engine stops answering) when the write fails.
        """
        if self.failed is not None:
            raise self.failed
        try:
            self.store.commit()
        except CommitFailed as exc:
            self._fail(exc)
            raise
        unrouted, self._unrouted = self._unrouted, []
        self._route(unrouted)
        self._maybe_snapshot()

    def _fail(self, exc: CommitFailed) -> None:
        logger.critical("%s; answering nothing more and stopping: the next start recovers", exc)
        self.failed = exc
        self._unrouted = []
        self.on_failure()

    # -- timers --------------------------------------------------------------

    def tick(self) -> None:
        """Fire whatever is due: promise timeouts, task retries and leases, schedule runs."""
        now = self.clock()
        self.router.check_streams()
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
                self.store.stage(now, None)
        self._collect(now)
        if self.store.staged or self._unrouted:
            self.commit()

    def _collect(self, now: int) -> None:
        """One retention batch when due; the next one at once while a backlog remains."""
        if self.retain_ms is None or now < self._next_gc:
            return
        settled_before = now - self.retain_ms
        self.state.changed = False
        deleted = retention.collect(self.state, settled_before, retention.GC_BATCH)
        if deleted:
            self.store.stage(now, retention.gc_request(settled_before, retention.GC_BATCH))
            logger.info("retention: forgot %d settled promises", deleted)
        more = deleted == retention.GC_BATCH
        interval = min(retention.GC_INTERVAL_MS, self.retain_ms)
        self._next_gc = now if more else now + interval

    async def run_timers(self, interval: float = TICK_INTERVAL_S) -> None:
        while True:
            try:
                self.tick()
            except CommitFailed:
                return
            except Exception:
                logger.exception("timer tick failed")
            await asyncio.sleep(interval)

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().create_task(self.run_timers())

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        if self.failed is not None:
            self.store.close()  # what is in memory never reached the disk: keep the disk's
            return
        self.store.write_snapshot(self.state)
        self.store.close()
        logger.info("stopped; %d promises saved to %s", len(self.state.promises), self.store.path)

    # -- internals -----------------------------------------------------------

    def _apply(
        self, now: int, body: bytes, kind: Any, data: dict[str, Any], corr_id: Any, version: str
    ) -> Answer:
        """Run one request through the machine; stage it when it changed something."""
        self.state.changed = False
        try:
            answer = self.state.apply(now, kind, data, corr_id, version)
        except Exception:
            logger.exception("state machine failed on %s", kind)
            answer = Answer(500, "error", f"internal error while applying {kind}")
        self._take_outgoing()
        if self.state.changed:
            self.store.stage(now, body)
        if kind in FROM_A_WORKER:
            pid = data.get("pid")
            if isinstance(pid, str):
                self.router.heard_from(pid)
        return answer

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
        pushes = bool(self._unrouted)
        try:
            self.commit()
        except CommitFailed as exc:
            if batch is not None:
                batch.set_exception(exc)
            for _, deliver in held:
                deliver(self._unavailable())
            return
        if batch is not None:
            batch.set_result(None)
        if pushes and held:
            # The poll streams' writers were woken by the commit's messages: they write
            # first, on the next turn, then these answers. A message is the next step of a
            # flow (the work for another process), an answer only lets its caller go on.
            asyncio.get_running_loop().call_soon(_deliver, held)
        else:
            _deliver(held)

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

    def _recover(self) -> None:
        """Load the snapshot and replay the log after it; messages are not re-sent.

        Work that was waiting is handed out again when workers reconnect
        (the router gives a connecting stream every pending task of its group).
        """
        try:
            seq = self.store.load_snapshot(self.state)
            for entry in self.store.log_after(seq):
                self._replay(entry.seq, entry.at, entry.request)
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.store.path!r} is damaged ({exc}); restore it from a backup, "
                "or move it away to start empty"
            ) from None

    def _replay(self, seq: int, at: int, body: bytes | None) -> None:
        """Apply one log entry again; one that does not parse is a damaged database."""
        if body is None:
            self.state.tick(at)
        else:
            try:
                request = parse_request(body, bounded=False)
            except ProtocolError:
                raise StoreError(
                    f"log entry {seq} in {self.store.path!r} is not a request ({body[:60]!r}); "
                    "the database is damaged: restore it from a backup, or move it away"
                ) from None
            if request.kind == retention.GC_KIND:
                settled_before = fields.integer(request.data, "settledBefore") or 0
                limit = fields.integer(request.data, "limit") or 0
                retention.collect(self.state, settled_before, limit)
            else:
                with contextlib.suppress(Exception):
                    self.state.apply(
                        at, request.kind, request.data, request.corr_id, request.version
                    )
        self.state.outgoing.clear()
        self.recovered_entries += 1
