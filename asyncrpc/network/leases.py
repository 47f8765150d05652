"""Leases a node's server takes for it as it hands it a task, and the SDK's acquires they answer.

The SDK takes a task by sending ``task.acquire`` once its ``execute`` message
arrives: one round trip per step before any of the step's work. A node's
server can take that lease for it as it hands the task over (resonate-pg in
its dequeue, :mod:`asyncrpc.network.postgres_link`; the embedded server in the
``execute`` it pushes, :mod:`asyncrpc.network.join`). The answer the server
gave that acquire is kept here (:class:`KeptLeases`), and the SDK's own
``task.acquire`` of that task and version, which follows at once, is answered
from it, with the request's correlation id and version: the request never
leaves the process.

A kept answer the SDK does not ask for within :attr:`Leases.keep_s` (a quarter
of the ttl) is dropped: the SDK's acquire then goes to the server, which
refuses it (the version moved on), and the lease lapses and the task is given
again, as after a crash.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import msgspec
from resonate_base.connections import Network

log = logging.getLogger(__name__)

#: How the SDK's ``task.acquire`` request begins (msgspec writes ``kind`` first, no spaces).
ACQUIRE_PREFIX = '{"kind":"task.acquire"'


@dataclass(frozen=True)
class Leases:
    """What a node needs to have its tasks' leases taken as they are handed to it.

    ``room`` is the seam to the SDK's concurrency limit: how many more tasks it
    would start at once now (its free permits; :func:`asyncrpc.node.worker.sdk_room`).
    A task that waits for a permit would wait holding a lease taken for it, whose
    ttl runs meanwhile, so no more leases are taken at once than that room, less
    the kept answers not yet asked for.
    """

    #: The lease the SDK's ``task.acquire`` asks for, in milliseconds (its ``ttl``).
    ttl_ms: int
    #: How many more tasks the SDK would start at once now.
    room: Callable[[], int]
    #: Seconds a kept answer waits for the SDK's acquire. The SDK's first heartbeat comes
    #: half a ttl after the step starts, so a step started this late still renews its
    #: lease in time.
    keep_s: float

    @classmethod
    def for_ttl(cls, ttl_s: float, room: Callable[[], int]) -> Leases:
        """The leases of a node whose SDK asks for ``ttl_s`` seconds: kept a quarter of that.

        The milliseconds as the SDK counts them from its ``timedelta`` (whole ones, cut;
        none at all is 2**50), so the acquire it sends asks for the very lease taken.
        """
        ms = int(timedelta(seconds=ttl_s).total_seconds() * 1000)
        return cls(ttl_ms=ms if ms > 0 else 1 << 50, room=room, keep_s=ttl_s / 4)


@dataclass(frozen=True, slots=True)
class _Kept:
    """An acquire's answer taken for the node: its ``data``, and until when it is given."""

    data: str
    until: float


class _AcquireHead(msgspec.Struct, rename="camel"):
    corr_id: str = ""
    version: str = "1"


class _AcquireData(msgspec.Struct):
    id: str
    version: int
    pid: str
    ttl: int


class _Acquire(msgspec.Struct):
    """What is read of the SDK's ``task.acquire`` (the rest of it is ignored)."""

    head: _AcquireHead
    data: _AcquireData


_read_acquire = msgspec.json.Decoder(_Acquire)
_json_text = msgspec.json.Encoder()


class KeptLeases:
    """The answers of the acquires a node's server took for it, until the SDK asks for each.

    Empty and taking nothing until :meth:`take` is given the node's :class:`Leases`
    (a node takes them; the gateway runs no tasks and never does). ``clock`` is the
    seam for time (seconds, monotonic); ``on_stop`` runs when the taking stops, so
    whoever asks the server for leases asks no more.
    """

    def __init__(
        self,
        pid: str,
        clock: Callable[[], float] = time.monotonic,
        on_stop: Callable[[], None] = lambda: None,
    ) -> None:
        self.pid = pid
        self._clock = clock
        self.on_stop = on_stop
        #: None: no leases are taken (plain executes, acquired one request each).
        self.leases: Leases | None = None
        self._kept: dict[tuple[str, int], _Kept] = {}

    def take(self, leases: Leases) -> None:
        """Take leases from now on, as ``leases`` says."""
        self.leases = leases

    def stop_taking(self) -> None:
        """Take no more leases, and drop the answers kept: their leases lapse."""
        self.leases = None
        self._kept.clear()
        self.on_stop()

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, task: str, version: int, data: str) -> None:
        """Keep ``data``, the answer to the acquire of ``task`` at ``version``, for the SDK."""
        if self.leases is not None:
            self._kept[(task, version)] = _Kept(data, self._clock() + self.leases.keep_s)

    def room(self) -> int:
        """How many more leases may be taken now: the SDK's room, less the answers kept.

        Kept answers past their time are dropped first: their leases lapse.
        """
        if self.leases is None:
            return 0
        self.drop_expired()
        return max(0, self.leases.room() - len(self._kept))

    def drop_expired(self) -> None:
        """Drop the answers the SDK did not ask for in time: their leases lapse."""
        if self._kept:
            now = self._clock()
            for key in [key for key, kept in self._kept.items() if kept.until < now]:
                del self._kept[key]
                unused(*key)

    def answer(self, req: str) -> str | None:
        """The answer to the SDK's ``task.acquire`` ``req`` that was taken for it, if one was.

        The server's answer to the same request, with the request's correlation id and
        version. An answer past its time, or one for another pid or ttl, is not given:
        the request goes to the server, which refuses it. Another pid or ttl ends the
        leases: the SDK asks for leases other than those taken for it.
        """
        if not self._kept or not req.startswith(ACQUIRE_PREFIX):
            return None
        try:
            request = _read_acquire.decode(req)
        except msgspec.DecodeError:
            return None
        data = request.data
        kept = self._kept.pop((data.id, data.version), None)
        if kept is None or self.leases is None:
            return None
        if kept.until < self._clock():
            unused(data.id, data.version)
            return None
        if data.pid != self.pid or data.ttl != self.leases.ttl_ms:
            log.warning(
                "task.acquire of %s as %s for %d ms, but its lease was taken as %s for %d ms: "
                "the lease lapses, and tasks are acquired one request each from now on",
                data.id,
                data.pid,
                data.ttl,
                self.pid,
                self.leases.ttl_ms,
            )
            self.stop_taking()
            return None
        head = request.head
        return (
            '{"kind":"task.acquire","head":{"corrId":'
            + _json_text.encode(head.corr_id).decode()
            + ',"status":200,"version":'
            + _json_text.encode(head.version).decode()
            + '},"data":'
            + kept.data
            + "}"
        )


def unused(task: str, version: int) -> None:
    """Log a lease taken for the node that the SDK did not ask for in time."""
    log.info(
        "the lease of task %s (version %d), taken as it was handed over, went unused: "
        "it lapses and the task is given again",
        task,
        version,
    )


class _TaskRef(msgspec.Struct):
    id: str
    version: int


class _ExecuteData(msgspec.Struct):
    task: _TaskRef


class _Execute(msgspec.Struct):
    """An ``execute`` message as read here: its ``data`` as sent, the lease it carries."""

    data: msgspec.Raw
    #: Empty when it carries none (msgspec reads a ``Raw`` only as a field of that type).
    acquired: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


_read_execute = msgspec.json.Decoder(_Execute)
_read_execute_data = msgspec.json.Decoder(_ExecuteData)
#: How an ``execute`` that carries its lease marks it (a key: a string's quotes are escaped).
_CARRIED = '"acquired":'


def take_carried(message: str, kept: KeptLeases) -> str:
    """``message`` for the SDK; the lease an ``execute`` carries, if any, kept in ``kept``.

    The embedded server sends an ``execute`` with its task acquired for this process
    as ``{"kind": "execute", "head": {}, "data": {"task": {"id", "version"}},
    "acquired": <the data of that acquire's answer>}``. The SDK gets the execute
    without it (its acquire is then answered from ``kept``); any other message, or one
    that does not read as such, goes to the SDK as it came.
    """
    if kept.leases is None or _CARRIED not in message:
        return message
    try:
        execute = _read_execute.decode(message)
        if not execute.acquired:
            return message
        task = _read_execute_data.decode(execute.data).task
    except msgspec.DecodeError:
        return message
    kept.drop_expired()
    kept.keep(task.id, task.version, bytes(execute.acquired).decode())
    return '{"kind":"execute","head":{},"data":' + bytes(execute.data).decode() + "}"


class LeasedNetwork:
    """A request channel whose ``task.acquire`` of a kept lease is answered at once.

    Every other request goes to ``inner`` as it came. ``kept`` is the message
    source's (:class:`~asyncrpc.network.join.PollStream`), which fills it.
    """

    def __init__(self, inner: Network, kept: KeptLeases) -> None:
        self.inner = inner
        self.kept = kept

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        answer = self.kept.answer(req)
        if answer is not None:
            return answer
        return await self.inner.send(req, headers)
