"""The gateway's request channel: the SDK's requests pass through; a start's go out together.

A start sends two requests of its own (``promise.create``, then
``promise.register_listener`` for the same promise: see
:mod:`asyncrpc.gateway.sdk_rpc`). Where the channel pipelines (HTTP,
:meth:`~asyncrpc.network.lean_http.LeanHttpNetwork.send_together`), the two go
out on one connection in one write: the server reads them in order, so the
listen finds the promise the create made, and one exchange with the server does
the work of two. Every other request (the SDK's own) passes through untouched.

A start may be *patient*: a start whose requests fail to reach the server (a
``ConnectorError``: no answer, no connection) sends them again until
``patience`` seconds have passed since the first attempt, each attempt cut to
the time left. Sending a create again is safe: a create of an id that exists
answers with that promise (its request tag tells whether this start made it).
Only a start that got no answer from the server within that time fails, and
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
from collections.abc import Awaitable, Callable
from typing import Protocol, cast

from resonate.error import ConnectorError
from resonate_base.connections import Network

from asyncrpc.runtime.on_time import within

#: Seconds between two attempts of a patient start (each attempt already waits for an answer).
RESEND_PAUSE_S = 0.25


class Pipelining(Protocol):
    """A request channel that can send requests the server reads in order, in one write."""

    async def send_together(
        self, reqs: list[str], headers: dict[str, str] | None = None
    ) -> list[str]: ...


class StartChannel:
    """A network that passes the SDK's requests through and sends a start's together."""

    def __init__(
        self,
        inner: Network,
        *,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
        unwinds_at_once: bool = False,
        pipelines: bool = False,
        inner_timeout: float | None = None,
    ) -> None:
        if pipelines and not callable(getattr(inner, "send_together", None)):
            raise ValueError(f"{inner!r} cannot send requests together")
        self._inner = inner
        self._unwinds_at_once = unwinds_at_once
        #: Whether a start's two requests go out in one write (else one after the other).
        self.pipelines = pipelines
        #: Seconds past which ``inner`` fails any request itself, where it does.
        self._inner_timeout = inner_timeout
        self._clock = clock
        self._pause = pause

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        return await self._inner.send(req, headers)

    async def send_start(
        self, requests: list[str], headers: dict[str, str] | None, patience: float = 0.0
    ) -> list[str]:
        """The answers to ``requests`` (more than one only where the channel pipelines), in
        order; sent again while they fail to reach the server, for up to ``patience`` seconds."""
        if patience > 0:
            return await self._send_patiently(requests, headers, patience)
        return await self._send(requests, headers)

    async def _send(self, requests: list[str], headers: dict[str, str] | None) -> list[str]:
        if len(requests) == 1:
            return [await self._inner.send(requests[0], headers)]
        if not self.pipelines:
            raise ValueError("this channel sends one request at a time")
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
