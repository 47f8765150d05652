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

A watch may also be *patient*: a watched create that fails to reach the
server (a ``ConnectorError``: no answer, no connection) is sent again until
``patience`` seconds have passed since the first attempt, each attempt cut to
the time left. Sending a create again is safe: a create of an id that exists
answers with that promise (its request tag tells whether this start made it).
Only a create that got no answer from the server within that time fails, and
then the invocation was not started by this request, as far as the server
ever said.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field

import msgspec
from resonate.error import ConnectorError
from resonate_base.connections import Network

from asyncrpc.protocol.records import MalformedRecord, PromiseRecord
from asyncrpc.runtime.on_time import within

#: The request kind a watch looks for; a cheap substring test before any parsing.
CREATE_KIND = "promise.create"
#: Seconds between two attempts of a patient create (each attempt already waits for an answer).
RESEND_PAUSE_S = 0.25

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


@dataclass(eq=False)
class _Watch:
    tags: Mapping[str, str]
    patience: float = 0.0
    answer: asyncio.Future[PromiseRecord | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class CreateWatch:
    """A network that stamps a watched id's ``promise.create`` and keeps its answer."""

    def __init__(
        self,
        inner: Network,
        *,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._inner = inner
        self._clock = clock
        self._pause = pause
        #: Watches per promise id, oldest first: concurrent starts of one id take
        #: its creates in the order they were sent.
        self._watches: dict[str, deque[_Watch]] = {}

    @contextlib.contextmanager
    def watch(
        self, promise_id: str, tags: Mapping[str, str], patience: float = 0.0
    ) -> Iterator[asyncio.Future[PromiseRecord | None]]:
        """Watch the next ``promise.create`` of ``promise_id`` sent while inside the block.

        The create goes out with ``tags`` added; the future gets the promise the
        server answered with (None if the answer held none, e.g. an error). Send
        the create without awaiting anything first, so that concurrent watches of
        one id pair with their own creates. With ``patience`` the create is sent
        again while it fails to reach the server, for up to that many seconds.
        """
        watch = _Watch(tags, patience)
        self._watches.setdefault(promise_id, deque()).append(watch)
        try:
            yield watch.answer
        finally:
            self._forget(promise_id, watch)

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        if not self._watches or CREATE_KIND not in req:
            return await self._inner.send(req, headers)
        envelope = _decoder.decode(req)
        data = envelope.get("data") if isinstance(envelope, dict) else None
        if envelope.get("kind") != CREATE_KIND or not isinstance(data, dict):
            return await self._inner.send(req, headers)
        watch = self._take(data.get("id"))
        if watch is None:
            return await self._inner.send(req, headers)
        data["tags"] = {**(data.get("tags") or {}), **watch.tags}
        create = _encoder.encode(envelope).decode()
        if watch.patience > 0:
            answer = await self._send_patiently(create, headers, watch.patience)
        else:
            answer = await self._inner.send(create, headers)
        if not watch.answer.done():
            watch.answer.set_result(_promise_of(answer))
        return answer

    async def _send_patiently(
        self, create: str, headers: dict[str, str] | None, patience: float
    ) -> str:
        """Send ``create`` until the server answers, for at most ``patience`` seconds."""
        deadline = self._clock() + patience
        reason = ""
        while True:
            try:
                return await within(self._inner.send(create, headers), deadline - self._clock())
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


def _promise_of(answer: str) -> PromiseRecord | None:
    """The promise a create's answer carries; None for an error or an unreadable answer."""
    try:
        return PromiseRecord.from_wire(_decoder.decode(answer)["data"]["promise"])
    except (ValueError, TypeError, KeyError, MalformedRecord):
        return None
