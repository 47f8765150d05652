"""A request channel that hands a start the server's answer to its ``promise.create``.

The SDK's ``rpc`` starts an invocation in two requests (``promise.create``,
then ``promise.register_listener``), but keeps the create's answer to itself
and takes no tag from its caller. A start needs that answer: whether this
request created the invocation or found it (re-attached), and which function
the promise names (an id taken by another function is refused). Asking the
server again (``promise.get``) would cost a third request on every start.

:class:`CreateWatch` wraps the network a client sends through. While a start
watches an id, the next ``promise.create`` of that id gets the start's tags
added (a fresh request tag, which the promise keeps only if this request
created it, so the answer tells new from existing on a server answering 200
for both as on one answering 201 for new), and the promise the server answers
with is handed to the start. Every other request passes through untouched,
without being parsed when no start is watching. A watched create is decoded
and encoded with msgspec rather than the json module: it is on every start's
path, and msgspec does the same work in a fraction of the time
(docs/architecture.md).

With a ``listen_address`` (the gateway's, over HTTP), a watched create goes out
together with the ``promise.register_listener`` the SDK sends right after it,
pipelined on one connection in one write
(:meth:`~asyncrpc.network.lean_http.LeanHttpNetwork.send_together`): the server
reads the two in order, so the listen finds the promise the create made, as it
does when the SDK sends it, and one exchange with the server does the work of
two. The SDK's own listen is then answered with the server's answer to that one
(its corrId swapped in), without going to the server; a listen for another id
or address, or one sent after the watch ended, goes to the server as usual.

A watch may also be *patient*: a watched create that fails to reach the
server (a ``ConnectorError``: no answer, no connection) is sent again until
``patience`` seconds have passed since the first attempt, each attempt cut to
the time left. Sending a create again is safe: a create of an id that exists
answers with that promise (its request tag tells whether this start made it).
Only a create that got no answer from the server within that time fails, and
then the invocation was not started by this request, as far as the server
ever said. Each attempt is bounded by :func:`~asyncrpc.runtime.on_time.within`,
or, for a network that stops at once when cancelled (``unwinds_at_once``: HTTP),
by a plain :func:`asyncio.timeout`, which costs no task and no extra turn of the
event loop. An attempt given more time than the inner network lets any request take
(``inner_timeout``: a :class:`~asyncrpc.network.bounded.BoundedNetwork`'s bound, which
fails a request with a ``ConnectorError`` past it) needs no bound of its own: the inner
one ends it first, and the attempt costs no timer.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import msgspec
from resonate.error import ConnectorError
from resonate_base.connections import Network

from asyncrpc.protocol.records import PromiseRecord
from asyncrpc.protocol.states import PromiseState
from asyncrpc.runtime.on_time import within

#: The request kind a watch looks for; a cheap substring test before any parsing.
CREATE_KIND = "promise.create"
#: The listen sent with a watched create (with ``listen_address``), and its corrId's suffix.
LISTEN_KIND = "promise.register_listener"
LISTEN_SUFFIX = ".listen"
#: Seconds between two attempts of a patient create (each attempt already waits for an answer).
RESEND_PAUSE_S = 0.25

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


class _ListenHead(msgspec.Struct):
    corrId: str


class _ListenData(msgspec.Struct):
    awaited: str
    address: str


class _Listen(msgspec.Struct):
    """What a listen's answer needs of the SDK's ``promise.register_listener`` (typed: cheap)."""

    kind: str
    head: _ListenHead
    data: _ListenData


_listen_decoder = msgspec.json.Decoder(_Listen)


#: The states a promise may be in, as the wire names them.
_STATES = frozenset(str(state) for state in PromiseState)


@dataclass(frozen=True, slots=True)
class CreatedPromise:
    """The promise a watched create's answer carries, decoded only as far as it is read.

    Its ``tags`` tell a start whether its own request made it; the whole
    :class:`~asyncrpc.protocol.records.PromiseRecord` (its param decoded, for the
    function it names) only for a promise the request did not make. ``wire`` is a
    promise :meth:`PromiseRecord.from_wire` accepts.
    """

    wire: dict[str, Any]

    @property
    def tags(self) -> Mapping[str, str]:
        tags = self.wire.get("tags")
        return tags if isinstance(tags, dict) else {}

    def record(self) -> PromiseRecord:
        return PromiseRecord.from_wire(self.wire)


@dataclass(eq=False)
class _Watch:
    tags: Mapping[str, str]
    patience: float = 0.0
    answer: asyncio.Future[CreatedPromise | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _Watching:
    """A watch as a ``with`` block: its answer inside, forgotten when the block ends.

    A plain class rather than :func:`contextlib.contextmanager`: every start enters one.
    """

    __slots__ = ("_creates", "_promise_id", "_watch")

    def __init__(self, creates: CreateWatch, promise_id: str, watch: _Watch) -> None:
        self._creates = creates
        self._promise_id = promise_id
        self._watch = watch

    def __enter__(self) -> asyncio.Future[CreatedPromise | None]:
        return self._watch.answer

    def __exit__(self, *_: object) -> None:
        self._creates._forget(self._promise_id, self._watch)


class Pipelining(Protocol):
    """A request channel that can send requests the server reads in order, in one write."""

    async def send_together(
        self, reqs: list[str], headers: dict[str, str] | None = None
    ) -> list[str]: ...


class CreateWatch:
    """A network that stamps a watched id's ``promise.create`` and keeps its answer."""

    def __init__(
        self,
        inner: Network,
        *,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
        unwinds_at_once: bool = False,
        listen_address: str | None = None,
        inner_timeout: float | None = None,
    ) -> None:
        if listen_address is not None and not callable(getattr(inner, "send_together", None)):
            raise ValueError(f"{inner!r} cannot send a listen together with a create")
        self._inner = inner
        self._unwinds_at_once = unwinds_at_once
        #: Seconds past which ``inner`` fails any request itself, where it does.
        self._inner_timeout = inner_timeout
        self._listen_address = listen_address
        self._clock = clock
        self._pause = pause
        #: Watches per promise id, oldest first: concurrent starts of one id take
        #: its creates in the order they were sent.
        self._watches: dict[str, deque[_Watch]] = {}
        #: The answer to the listen sent with a watched create, by promise id, until
        #: the SDK's own listen takes it (or the watch ends).
        self._listened: dict[str, tuple[_Watch, str, str]] = {}

    def watch(self, promise_id: str, tags: Mapping[str, str], patience: float = 0.0) -> _Watching:
        """Watch the next ``promise.create`` of ``promise_id`` sent while inside the block.

        The create goes out with ``tags`` added; the future the block gets holds the
        promise the server answered with (:class:`CreatedPromise`; None if the answer
        held none, e.g. an error). Send the create without awaiting anything first, so
        that concurrent watches of one id pair with their own creates. With
        ``patience`` the create is sent again while it fails to reach the server, for
        up to that many seconds.
        """
        watch = _Watch(tags, patience)
        self._watches.setdefault(promise_id, deque()).append(watch)
        return _Watching(self, promise_id, watch)

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        if self._watches and CREATE_KIND in req:
            return await self._send_create(req, headers)
        if self._listened and LISTEN_KIND in req:
            answer = self._answer_listen(req)
            if answer is not None:
                return answer
        return await self._inner.send(req, headers)

    async def _send_create(self, req: str, headers: dict[str, str] | None) -> str:
        envelope = _decoder.decode(req)
        data = envelope.get("data") if isinstance(envelope, dict) else None
        if envelope.get("kind") != CREATE_KIND or not isinstance(data, dict):
            return await self._inner.send(req, headers)
        promise_id = data.get("id")
        watch = self._take(promise_id)
        if watch is None or not isinstance(promise_id, str):
            return await self._inner.send(req, headers)
        data["tags"] = {**(data.get("tags") or {}), **watch.tags}
        requests = [_encoder.encode(envelope).decode()]
        twin_corr_id = ""
        if self._listen_address is not None:
            head = envelope.get("head")
            listen_head = dict(head) if isinstance(head, dict) else {}
            twin_corr_id = f"{listen_head.get('corrId', '')}{LISTEN_SUFFIX}"
            listen_head["corrId"] = twin_corr_id
            data = {"awaited": promise_id, "address": self._listen_address}
            listen = {"kind": LISTEN_KIND, "head": listen_head, "data": data}
            requests.append(_encoder.encode(listen).decode())
        if watch.patience > 0:
            answers = await self._send_patiently(requests, headers, watch.patience)
        else:
            answers = await self._send(requests, headers)
        if len(answers) > 1:
            self._listened[promise_id] = (watch, twin_corr_id, answers[1])
        if not watch.answer.done():
            watch.answer.set_result(_promise_of(answers[0]))
        return answers[0]

    def _answer_listen(self, req: str) -> str | None:
        """The answer to the SDK's listen, when its twin went out with the create; else None.

        The server's answer, under the corrId the SDK's request carries (the twin's
        corrId, unique to it, swapped for that one).
        """
        try:
            listen = _listen_decoder.decode(req)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        data = listen.data
        if listen.kind != LISTEN_KIND or data.address != self._listen_address:
            return None
        stored = self._listened.pop(data.awaited, None)
        if stored is None:
            return None
        _, twin_corr_id, answer = stored
        twin = _encoder.encode(twin_corr_id).decode()
        if answer.count(twin) != 1:
            return None  # not where it is expected: the SDK's own listen goes to the server
        return answer.replace(twin, _encoder.encode(listen.head.corrId).decode())

    async def _send(self, requests: list[str], headers: dict[str, str] | None) -> list[str]:
        if len(requests) == 1:
            return [await self._inner.send(requests[0], headers)]
        # The inner network sends together: checked when this watch was made.
        return await cast(Pipelining, self._inner).send_together(requests, headers)

    async def _send_patiently(
        self, requests: list[str], headers: dict[str, str] | None, patience: float
    ) -> list[str]:
        """Send ``requests`` until the server answers, for at most ``patience`` seconds."""
        deadline = self._clock() + patience
        reason = ""
        while True:
            try:
                return await self._attempt(requests, headers, deadline - self._clock())
            except ConnectorError as exc:
                reason = str(exc.error) or type(exc.error).__name__
            except TimeoutError:
                pass  # the time is up; the reason is the last failure seen
            left = deadline - self._clock()
            if left <= 0:
                last = f" (last failure: {reason})" if reason else ""
                why = f"the Resonate server did not confirm creating it within {patience:g}s"
                raise ConnectorError(TimeoutError(why + last))
            await self._pause(min(RESEND_PAUSE_S, left))

    async def _attempt(
        self, requests: list[str], headers: dict[str, str] | None, left: float
    ) -> list[str]:
        """One attempt at sending ``requests``, given ``left`` seconds (TimeoutError past them)."""
        if self._inner_timeout is not None and left > self._inner_timeout:
            return await self._send(requests, headers)  # ``inner`` gives up sooner
        if self._unwinds_at_once:
            async with asyncio.timeout(max(0.0, left)):
                return await self._send(requests, headers)
        return await within(self._send(requests, headers), left)

    def _take(self, promise_id: object) -> _Watch | None:
        watches = self._watches.get(promise_id) if isinstance(promise_id, str) else None
        if not watches:
            return None
        watch = watches.popleft()
        if not watches:
            del self._watches[promise_id]  # type: ignore[arg-type]
        return watch

    def _forget(self, promise_id: str, watch: _Watch) -> None:
        watches = self._watches.get(promise_id)
        if watches is not None and watch in watches:
            watches.remove(watch)
            if not watches:
                del self._watches[promise_id]
        listened = self._listened.get(promise_id)
        if listened is not None and listened[0] is watch:
            del self._listened[promise_id]


def _promise_of(answer: str) -> CreatedPromise | None:
    """The promise a create's answer carries; None for an error or an unreadable answer.

    None also for a promise :meth:`PromiseRecord.from_wire` refuses (no string id, no
    valid state), which is all it checks before decoding.
    """
    try:
        promise = _decoder.decode(answer)["data"]["promise"]
    except (ValueError, TypeError, KeyError):
        return None
    if (
        not isinstance(promise, dict)
        or not isinstance(promise.get("id"), str)
        or str(promise.get("state")) not in _STATES
    ):
        return None
    return CreatedPromise(promise)
