"""Delivering the state machine's messages to the poll streams of live processes.

Addresses are ``poll://any@GROUP`` (any one member of the group) and
``poll://uni@GROUP/PID`` (that process). The router keeps the open poll
streams, and it is where "nothing is lost" is decided:

- an ``execute`` for a group with no live member is dropped here, because the
  task stays pending in the state and is handed to the first member that
  connects (see :meth:`Router.connect`);
- an ``execute`` for a process that is gone goes to another member of its group;
- an ``unblock`` for a process that is not connected waits in a bounded outbox
  for that address until it reconnects;
- when a stream dies, what was queued on it, and the ``execute`` messages
  written to it in the last moments (which a dying socket may have swallowed),
  are routed again. Re-sending an ``execute`` is safe: the task can be
  acquired once per version, and the redelivery is skipped when the task is no
  longer pending;
- an ``execute`` to a stream that takes leases (its process asked for them
  when it connected) carries the lease the engine took for that process
  (:meth:`Router.lessee`), as many at once as the process has room for; if the
  stream dies before its process was heard from, the lease is handed back
  (``on_abandoned``) and the task given again at once, rather than when the
  lease runs out;
- a stream whose process stops reading (stopped with SIGSTOP, or hung) still
  takes writes into its socket buffers, so the router watches what it was
  sent instead: an ``execute`` still pending at its version ``ack_timeout_ms``
  after it was written, from a process that has sent no request since
  (a live worker acquires at once; a busy one acquires other tasks or
  heartbeats), marks the stream unresponsive. It is closed and its work
  routed again as for a dead stream, well within a lease; a live process that
  was only slow reconnects.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

logger = logging.getLogger("asyncrpc.server.router")

#: How many undelivered unblock messages are kept per address, and for how many addresses.
OUTBOX_LIMIT = 256
OUTBOX_ADDRESSES = 1024
#: Messages written to a stream this recently are routed again if the stream dies (ms).
RECENT_WINDOW_MS = 5_000
#: An execute not acquired this long after it was written marks its stream unresponsive (ms).
ACK_TIMEOUT_MS = 3_000


@dataclass(frozen=True)
class Address:
    group: str
    pid: str | None
    unicast: bool

    @classmethod
    def parse(cls, address: str) -> Address | None:
        """Parse a ``poll://`` address; None for any other shape."""
        scheme, sep, rest = address.partition("://")
        if scheme != "poll" or not sep:
            return None
        cast, at, target = rest.partition("@")
        if not at or cast not in ("any", "uni") or not target:
            return None
        group, _, pid = target.partition("/")
        if not group or (cast == "uni" and not pid):
            return None
        return cls(group=group, pid=pid or None, unicast=cast == "uni")


#: Addresses as parsed, the most recently used kept: a flow's messages go to a few
#: addresses (its groups, its gateway), each many times.
_parse_address = functools.lru_cache(maxsize=1024)(Address.parse)


@dataclass(frozen=True)
class Message:
    """An encoded message; ``task`` is (id, version) for an execute, None for an unblock.

    ``lease`` is (id, version) of the lease an execute carries, taken for the process
    it goes to: the version its acquire moved the task to.
    """

    body: bytes
    task: tuple[str, int] | None = None
    lease: tuple[str, int] | None = None

    @classmethod
    def execute(cls, task_id: str, version: int) -> Message:
        body = msgspec.json.encode(
            {"kind": "execute", "head": {}, "data": {"task": {"id": task_id, "version": version}}}
        )
        return cls(body=body, task=(task_id, version))

    @classmethod
    def leased(cls, task_id: str, version: int, acquired: bytes) -> Message:
        """An execute that carries ``acquired``, the ``data`` of the answer to its acquire.

        ``version`` is the execute's (the one the process's ``task.acquire`` presents);
        the lease is at the next.
        """
        task = msgspec.json.encode({"id": task_id, "version": version})
        body = b'{"kind":"execute","head":{},"data":{"task":%b},"acquired":%b}' % (task, acquired)
        return cls(body=body, task=(task_id, version), lease=(task_id, version + 1))

    @classmethod
    def unblock(cls, promise: dict[str, Any]) -> Message:
        return cls(
            body=msgspec.json.encode({"kind": "unblock", "head": {}, "data": {"promise": promise}})
        )


@dataclass(eq=False)
class Stream:
    """One open poll stream: the queue its SSE response drains."""

    group: str
    pid: str
    queue: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)
    #: (sent at ms, message) of messages written recently, which a dying socket may have lost.
    recent: deque[tuple[int, Message]] = field(default_factory=deque)
    #: (sent at ms, message) of executes written, oldest first, until taken.
    unacked: deque[tuple[int, Message]] = field(default_factory=deque)
    #: Set when the router gives up on the stream; its HTTP response then ends.
    unresponsive: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    #: Writes one message on the stream at once, if it can (False: it wrote nothing).
    writer: Callable[[Message], bool] | None = None
    #: The queue's writer holds messages it is writing: what comes next queues behind them.
    pumping: bool = False
    #: The lease its process asked for (ms) when it connected; None: it takes no leases.
    lease_ms: int | None = None
    #: How many leases its process takes at once (its tasks' concurrency).
    room: int = 0
    #: (task id, version) of the leases sent to it, until they end (an ordered set).
    leased: dict[tuple[str, int], None] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamInfo:
    group: str
    pid: str
    queued: int


class Router:
    """Routes messages to streams; ``is_pending`` and ``pending_tasks`` read the state.

    ``pending_tasks`` lists ``(task id, version, target address)`` of the tasks
    waiting for a worker whose ``execute`` has gone out. ``holds`` says whether a
    pid holds a task's lease at a version; ``on_abandoned`` hands back a lease sent
    on a stream that died before its process was heard from.
    """

    def __init__(
        self,
        clock: Callable[[], int],
        is_pending: Callable[[str, int], bool],
        pending_tasks: Callable[[], list[tuple[str, int, str]]],
        ack_timeout_ms: int = ACK_TIMEOUT_MS,
        holds: Callable[[str, str, int], bool] = lambda pid, task_id, version: False,
        on_abandoned: Callable[[str, int], None] = lambda task_id, version: None,
    ) -> None:
        self._clock = clock
        self._holds = holds
        self._on_abandoned = on_abandoned
        self._ack_timeout_ms = ack_timeout_ms
        self._is_pending = is_pending
        self._pending_tasks = pending_tasks
        self._groups: defaultdict[str, list[Stream]] = defaultdict(list)
        #: pid of a connected stream -> when a request last came from it (ms).
        self._heard: dict[str, int] = {}
        self._outbox: OrderedDict[tuple[str, str], deque[Message]] = OrderedDict()
        self._turn = itertools.count()
        #: Messages put on a stream's queue so far (not written in the turn that routed them).
        self.queued = 0
        #: How many open streams take leases.
        self._leasing = 0

    # -- streams -------------------------------------------------------------

    def connect(self, group: str, pid: str, lease_ms: int | None = None, room: int = 0) -> Stream:
        """Open a stream; hand it its outbox and the pending work addressed to it.

        With ``lease_ms`` its executes carry leases of that many ms, ``room`` at once.
        """
        stream = Stream(group=group, pid=pid, lease_ms=lease_ms, room=room)
        self._groups[group].append(stream)
        if lease_ms is not None:
            self._leasing += 1
        self._heard[pid] = self._clock()
        for message in self._outbox.pop((group, pid), ()):
            stream.queue.put_nowait(message)
        for task_id, version, address in self._pending_tasks():
            target = Address.parse(address)
            if target is None or target.group != group:
                continue
            if target.unicast and target.pid != pid and self._find(group, target.pid):
                continue
            self._write(stream, Message.execute(task_id, version))
        logger.info("stream open group=%s pid=%s", group, pid)
        return stream

    def disconnect(self, stream: Stream) -> None:
        """Close a stream and route again whatever it may not have delivered."""
        if stream.closed:
            return
        stream.closed = True
        if stream.lease_ms is not None:
            self._leasing -= 1
        members = self._groups.get(stream.group, [])
        if stream in members:
            members.remove(stream)
        if not members:
            self._groups.pop(stream.group, None)
        heard = self._heard.get(stream.pid)
        if not any(s.pid == stream.pid for group in self._groups.values() for s in group):
            self._heard.pop(stream.pid, None)
        logger.info("stream closed group=%s pid=%s", stream.group, stream.pid)
        undelivered: list[Message] = []
        while not stream.queue.empty():
            undelivered.append(stream.queue.get_nowait())
        now = self._clock()
        recent = [(sent_at, m) for sent_at, m in stream.recent if now - sent_at <= RECENT_WINDOW_MS]
        unwritten = [(now, m) for m in undelivered]
        latest = {message: sent_at for sent_at, message in [*recent, *unwritten]}
        for message, sent_at in latest.items():
            if message.task is None:
                self._keep((stream.group, stream.pid), message)
            elif message.lease is not None:
                # Heard from since: the process took it, and goes on with it if it lives.
                taken = heard is not None and heard > sent_at
                if not taken and self._holds(stream.pid, *message.lease):
                    self._on_abandoned(*message.lease)
            elif self._is_pending(*message.task):
                self._send_to_group(stream.group, None, message)

    def heard_from(self, pid: str) -> None:
        """A request came from ``pid`` (an acquire or a heartbeat): its process is running."""
        if pid in self._heard:
            self._heard[pid] = self._clock()

    def check_streams(self) -> list[Stream]:
        """Close the streams whose executes go unacquired; the ones closed."""
        now = self._clock()
        stuck = [
            stream
            for members in self._groups.values()
            for stream in members
            if self._unresponsive(stream, now)
        ]
        for stream in stuck:
            logger.warning(
                "stream group=%s pid=%s is not taking its work (an execute unacquired for "
                "%d ms); closing it and routing its work to another member",
                stream.group,
                stream.pid,
                self._ack_timeout_ms,
            )
            stream.unresponsive.set()
            self.disconnect(stream)
        return stuck

    def _unresponsive(self, stream: Stream, now: int) -> bool:
        unacked = stream.unacked
        while unacked:
            sent_at, message = unacked[0]
            if not self._waits_for(stream, message):
                unacked.popleft()
            else:
                overdue = now - sent_at >= self._ack_timeout_ms
                return overdue and self._heard.get(stream.pid, now) <= sent_at
        return False

    def _waits_for(self, stream: Stream, message: Message) -> bool:
        """Whether an execute written to ``stream`` is still to be taken by its process."""
        if message.lease is not None:
            return self._holds(stream.pid, *message.lease)
        assert message.task is not None
        return self._is_pending(*message.task)

    def streams(self) -> list[StreamInfo]:
        return [
            StreamInfo(group=s.group, pid=s.pid, queued=s.queue.qsize())
            for members in self._groups.values()
            for s in members
        ]

    # -- delivery ------------------------------------------------------------

    def deliver(self, address: str, message: Message) -> None:
        """Send one message to ``address`` (``poll://any@group`` or ``poll://uni@group/pid``)."""
        target = _parse_address(address)
        if target is None:
            logger.warning("dropping message for unroutable address %r", address)
            return
        if message.task is not None or target.pid is None:
            self._send_to_group(target.group, target.pid, message)
            return
        stream = self._find(target.group, target.pid)
        if stream is not None:
            self._write(stream, message)
        else:
            self._keep((target.group, target.pid), message)

    @property
    def leasing(self) -> bool:
        """Whether any open stream takes leases."""
        return self._leasing > 0

    def lessee(self, address: str) -> Stream | None:
        """The stream an execute for ``address`` goes to, if it takes leases and has room.

        None when the stream it goes to takes none, or holds as many as its process
        has room for: that execute goes plain (:meth:`deliver`).
        """
        if not self._leasing:
            return None
        target = _parse_address(address)
        if target is None:
            return None
        stream = (self._find(target.group, target.pid) if target.pid else None) or self._pick(
            target.group
        )
        if stream is None or stream.lease_ms is None:
            return None
        leased = stream.leased
        if len(leased) >= stream.room:
            for key in [key for key in leased if not self._holds(stream.pid, *key)]:
                del leased[key]
            if len(leased) >= stream.room:
                return None
        return stream

    def deliver_leased(self, stream: Stream, message: Message) -> None:
        """Write an execute that carries a lease taken for ``stream``'s process."""
        assert message.lease is not None
        stream.leased[message.lease] = None
        self._write(stream, message)

    def _send_to_group(self, group: str, pid: str | None, message: Message) -> None:
        stream = (self._find(group, pid) if pid else None) or self._pick(group)
        if stream is None:
            logger.debug("no live member of %s; the work waits for one to connect", group)
            return
        self._write(stream, message)

    def _keep(self, key: tuple[str, str], message: Message) -> None:
        """Park an unblock for a process that is not connected (bounded)."""
        box = self._outbox.get(key)
        if box is None:
            box = self._outbox[key] = deque(maxlen=OUTBOX_LIMIT)
            while len(self._outbox) > OUTBOX_ADDRESSES:
                self._outbox.popitem(last=False)
        if message not in box:
            box.append(message)

    def _write(self, stream: Stream, message: Message) -> None:
        now = self._clock()
        recent = stream.recent
        recent.append((now, message))
        while recent and now - recent[0][0] > RECENT_WINDOW_MS:
            recent.popleft()
        if message.task is not None:
            stream.unacked.append((now, message))
        if not self._write_now(stream, message):
            stream.queue.put_nowait(message)
            self.queued += 1

    @staticmethod
    def _write_now(stream: Stream, message: Message) -> bool:
        """Write ``message`` at once if the stream can and nothing waits in its queue."""
        writer = stream.writer
        if writer is None or stream.pumping or not stream.queue.empty():
            return False
        try:
            return writer(message)
        except Exception:  # the queue's writer tries again, and ends the stream if it must
            logger.exception("writing to the poll stream of %s failed", stream.pid)
            return False

    def _find(self, group: str, pid: str | None) -> Stream | None:
        for stream in reversed(self._groups.get(group, ())):
            if stream.pid == pid:
                return stream
        return None

    def _pick(self, group: str) -> Stream | None:
        members = self._groups.get(group)
        if not members:
            return None
        return members[next(self._turn) % len(members)]
