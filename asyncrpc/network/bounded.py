"""A request channel to the server that gives up, for callers waiting on an answer.

The SDK retries an unreachable server forever, which is right for a worker
and wrong for a caller waiting on an HTTP response: the gateway's requests
go through :class:`BoundedNetwork`, so its caller hears "server unreachable"
after a few seconds instead of hanging. The answer comes on time even when
the request cannot stop at once (:func:`~asyncrpc.runtime.on_time.within`):
the message names the time it took.
"""

from __future__ import annotations

from resonate.error import ConnectorError
from resonate.retry import ExponentialBackoff
from resonate_base.connections import Network

from asyncrpc.network.lean_http import server_network
from asyncrpc.runtime.on_time import within

#: Seconds one request to the server may take before the server counts as unreachable.
DEFAULT_REQUEST_TIMEOUT = 5.0


class BoundedNetwork:
    """A connection to the server whose every request gives up after ``timeout`` seconds."""

    def __init__(self, inner: Network, url: str, timeout: float) -> None:
        self._inner = inner
        self._url = url
        self._timeout = timeout

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        try:
            return await within(self._inner.send(req, headers), self._timeout)
        except TimeoutError:
            reason = f"no answer from the Resonate server at {self._url} within {self._timeout:g}s"
            raise ConnectorError(TimeoutError(reason)) from None


def bounded_network(
    url: str, token: str | None = None, timeout: float = DEFAULT_REQUEST_TIMEOUT
) -> BoundedNetwork:
    """An HTTP network for callers: requests to ``url`` that fail within ``timeout`` seconds."""
    backoff = ExponentialBackoff(initial=0.2, max_delay=1.0)
    return BoundedNetwork(server_network(url, auth=token, backoff=backoff), url, timeout)
