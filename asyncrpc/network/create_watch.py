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
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import msgspec
from resonate_base.connections import Network

from asyncrpc.protocol.records import MalformedRecord, PromiseRecord

#: The request kind a watch looks for; a cheap substring test before any parsing.
CREATE_KIND = "promise.create"

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


@dataclass(eq=False)
class _Watch:
    tags: Mapping[str, str]
    answer: asyncio.Future[PromiseRecord | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class CreateWatch:
    """A network that stamps a watched id's ``promise.create`` and keeps its answer."""

    def __init__(self, inner: Network) -> None:
        self._inner = inner
        #: Watches per promise id, oldest first: concurrent starts of one id take
        #: its creates in the order they were sent.
        self._watches: dict[str, deque[_Watch]] = {}

    @contextlib.contextmanager
    def watch(
        self, promise_id: str, tags: Mapping[str, str]
    ) -> Iterator[asyncio.Future[PromiseRecord | None]]:
        """Watch the next ``promise.create`` of ``promise_id`` sent while inside the block.

        The create goes out with ``tags`` added; the future gets the promise the
        server answered with (None if the answer held none, e.g. an error). Send
        the create without awaiting anything first, so that concurrent watches of
        one id pair with their own creates.
        """
        watch = _Watch(tags)
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
        answer = await self._inner.send(_encoder.encode(envelope).decode(), headers)
        if not watch.answer.done():
            watch.answer.set_result(_promise_of(answer))
        return answer

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
