"""A request channel to the server that gives up, for callers waiting on an answer.

The SDK retries an unreachable server forever, which is right for a worker
and wrong for a caller waiting on an HTTP response: the gateway's requests
go through :class:`BoundedNetwork`, so its caller hears "server unreachable"
after a few seconds instead of hanging. The answer comes on time even when
the request cannot stop at once (:func:`~asyncrpc.runtime.on_time.within`):
the message names the time it took. A request channel that stops at once when
cancelled (HTTP: closing its connection is all there is to undo) needs none of
that: with ``unwinds_at_once`` the bound is a plain :func:`asyncio.timeout`
around the request, which costs a timer instead of a task, a wait and two
turns of the event loop per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from resonate.error import ConnectorError
from resonate.retry import ExponentialBackoff
from resonate_base.connections import Network

from asyncrpc.network.lean_http import server_network
from asyncrpc.runtime.on_time import within

#: Seconds one request to the server may take before the server counts as unreachable.
DEFAULT_REQUEST_TIMEOUT = 5.0


class BoundedNetwork:
    """A connection to the server whose every request gives up after ``timeout`` seconds."""

    def __init__(
        self, inner: Network, url: str, timeout: float, *, unwinds_at_once: bool = False
    ) -> None:
        self._inner = inner
        self._url = url
        self._timeout = timeout
        #: Whether ``inner`` stops as soon as a request is cancelled (see the module).
        self.unwinds_at_once = unwinds_at_once

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        return await self._bounded(self._inner.send(req, headers))

    @property
    def pipelines(self) -> bool:
        """Whether :meth:`send_together` writes its requests together (``inner`` can)."""
        return callable(getattr(self._inner, "send_together", None))

    async def send_together(
        self, reqs: list[str], headers: dict[str, str] | None = None
    ) -> list[str]:
        """Requests the server reads in order, bounded as one; their answers, in order.

        Pipelined on one connection where ``inner`` can
        (:meth:`~asyncrpc.network.lean_http.LeanHttpNetwork.send_together`), else one
        after another.
        """
        return await self._bounded(self._together(reqs, headers))

    async def _together(self, reqs: list[str], headers: dict[str, str] | None) -> list[str]:
        together = getattr(self._inner, "send_together", None)
        if callable(together):
            answers: list[str] = await together(reqs, headers)
            return answers
        return [await self._inner.send(req, headers) for req in reqs]

    async def _bounded[T](self, request: Coroutine[Any, Any, T]) -> T:
        try:
            if self.unwinds_at_once:
                async with asyncio.timeout(self._timeout):
                    return await request
            return await within(request, self._timeout)
        except TimeoutError:
            reason = f"no answer from the Resonate server at {self._url} within {self._timeout:g}s"
            raise ConnectorError(TimeoutError(reason)) from None


def bounded_network(
    url: str, token: str | None = None, timeout: float = DEFAULT_REQUEST_TIMEOUT
) -> BoundedNetwork:
    """An HTTP network for callers: requests to ``url`` that fail within ``timeout`` seconds."""
    backoff = ExponentialBackoff(initial=0.2, max_delay=1.0)
    network = server_network(url, auth=token, backoff=backoff)
    return BoundedNetwork(network, url, timeout, unwinds_at_once=True)
