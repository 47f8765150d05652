"""Join a process (worker node or gateway) to the Resonate server, in a group.

A process has two identities: its *unique id* (the SDK's ``pid``: unicast,
the server addresses this one process) and its *group* (anycast: any one
member of the group gets work sent to the group). :func:`join` builds the
SDK's client with this project's transports: the lean HTTP client for
requests, the SDK's SSE poll stream (wrapped to say when it is connected) for
messages, and the interval heartbeat. For a ``postgresql://`` URL (resonate-pg)
one :class:`~asyncrpc.network.postgres_link.PostgresLink` is both the request
channel and the message source.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

import aiohttp
from resonate.connections import SSEConnection
from resonate.connections.sse import SseFramer
from resonate.resonate import Resonate
from resonate.retry import ExponentialBackoff
from resonate.send import Sender
from resonate.transport import Transport
from resonate_base.connections import Network

from asyncrpc.network.bounded import BoundedNetwork
from asyncrpc.network.health import HEALTHY, LinkHealth
from asyncrpc.network.heartbeat import IntervalHeartbeat
from asyncrpc.network.lean_http import server_network
from asyncrpc.runtime import config
from asyncrpc.runtime.keepalive import keepalive_socket

if TYPE_CHECKING:
    from asyncrpc.network.postgres_link import PostgresLink

logger = logging.getLogger(__name__)

#: Reconnect (and resend) quickly: the SDK's own ladder climbs to a minute,
#: too slow to watch a flow continue after the server restarts in a demo.
RECONNECT = ExponentialBackoff(initial=0.5, factor=2.0, max_delay=2.0)

#: The poll stream is one GET that lasts as long as the process: no total time limit (aiohttp's
#: default of five minutes would end it), only a bound on making the connection.
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10.0)


@contextlib.contextmanager
def eager_tasks() -> Iterator[None]:
    """Tasks created inside the block start at once, in the caller's turn (eager tasks).

    Code run inside the block does not yield to the event loop, so no other task
    runs while the loop's task factory is swapped.
    """
    loop = asyncio.get_running_loop()
    factory = loop.get_task_factory()
    loop.set_task_factory(asyncio.eager_task_factory)
    try:
        yield
    finally:
        loop.set_task_factory(factory)


class PollStream(SSEConnection):
    """The SDK's SSE poll source, kept connected for the whole life of the process.

    Two things are added to :class:`SSEConnection`:

    - It says whether its stream is connected. :class:`SSEConnection` hands a
      successfully opened stream (2xx) to ``_read_stream`` and only returns from
      it when the stream ends; wrapping that one call is the narrowest way to
      observe the connection without copying the reconnect loop.
      ``on_first_connect`` runs once, before the first message is read, so a
      ready line comes before any work is logged.
    - It never stops listening while it runs. The SDK's loop reconnects after
      the errors aiohttp names (``ClientError``) but ends on any other, a
      timeout among them, which would leave the process connected for requests
      and deaf to work. Here the loop starts again after any failure, and the
      stream's session has no total time limit (``timeout``).
    - Its socket sends keepalive probes and has a TCP user timeout
      (:mod:`asyncrpc.runtime.keepalive`): a stream whose link died silently
      fails within seconds and reconnects, instead of waiting, deaf, for TCP
      to give up.
    - A pushed message's work starts in the turn of the event loop that reads it:
      the SDK hands an ``execute`` to a task it creates, and those tasks start
      eagerly (:func:`eager_tasks`), so the task's acquire leaves in that same
      turn instead of the next one.
    """

    def __init__(
        self,
        url: str,
        *,
        pid: str,
        group: str,
        auth: str | None = None,
        on_first_connect: Callable[[], None] | None = None,
        timeout: aiohttp.ClientTimeout = STREAM_TIMEOUT,
    ) -> None:
        super().__init__(url, pid=pid, group=group, auth=auth, backoff=RECONNECT)
        self.connected = asyncio.Event()
        self._on_first_connect = on_first_connect
        self._timeout = timeout
        self._failure: str | None = None

    def health(self) -> LinkHealth:
        """Whether the stream is connected now, and if not, why."""
        if self.connected.is_set():
            return HEALTHY
        why = f" ({self._failure})" if self._failure else " yet"
        return LinkHealth(False, f"no poll stream to the Resonate server at {self._url}{why}")

    @property
    def timers(self) -> str | None:
        """Who fires the timers: an HTTP server fires its own, so this stream does not say."""
        return None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None and not self._stopped:
            connector = aiohttp.TCPConnector(socket_factory=keepalive_socket)
            self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector)
        return super()._ensure_session()

    async def _sse_loop(self) -> None:
        failures = 0
        while self._running:
            try:
                await super()._sse_loop()
                return  # it returns only once stopped or cancelled
            except Exception as error:
                self._failure = str(error) or type(error).__name__
                delay = RECONNECT.delay(failures)
                failures += 1
                logger.warning("poll stream failed (%r); reconnecting in %gs", error, delay)
                await asyncio.sleep(delay)

    async def _read_stream(self, resp: aiohttp.ClientResponse) -> None:
        self._failure = None
        self.connected.set()
        if self._on_first_connect is not None:
            on_first_connect, self._on_first_connect = self._on_first_connect, None
            on_first_connect()
        try:
            framer = SseFramer()
            async for chunk in resp.content.iter_any():
                messages = framer.feed(chunk)
                if messages:
                    self._dispatch(messages)
        except Exception as error:
            self._failure = f"the stream broke: {type(error).__name__}"
            raise
        else:
            self._failure = "the server ended the stream"
        finally:
            self.connected.clear()

    def _dispatch(self, messages: list[str]) -> None:
        with eager_tasks():
            for data in messages:
                for callback in list(self._subscribers):
                    callback(data)


type Source = PollStream | PostgresLink  # evaluated lazily: PostgresLink is imported on use


def links(
    server_url: str,
    *,
    group: str,
    pid: str,
    token: str | None = None,
    request_timeout: float | None = None,
    on_first_connect: Callable[[], None] | None = None,
) -> tuple[Network, Source]:
    """The request channel and the message source of one process, for ``server_url``.

    The source's ``connected`` event says whether it reaches the server. With
    ``request_timeout`` every request gives up after that many seconds (the
    gateway's callers wait on them) instead of retrying an unreachable server
    for as long as the process runs.
    """
    stream: Source
    network: Network
    if config.is_postgres_url(server_url):
        # psycopg and resonate-pg: imported only by a process whose server is Postgres.
        from asyncrpc.network.postgres_link import PostgresLink

        stream = network = PostgresLink(
            server_url, pid=pid, group=group, backoff=RECONNECT, on_first_connect=on_first_connect
        )
    else:
        stream = PollStream(
            server_url, pid=pid, group=group, auth=token, on_first_connect=on_first_connect
        )
        network = server_network(server_url, auth=token, backoff=RECONNECT)
    if request_timeout is not None:
        network = BoundedNetwork(network, config.redacted(server_url), request_timeout)
    return network, stream


class Links(Protocol):
    """What makes a process's request channel and message source: :func:`links`, or a wrapper."""

    def __call__(
        self,
        server_url: str,
        *,
        group: str,
        pid: str,
        token: str | None = None,
        request_timeout: float | None = None,
        on_first_connect: Callable[[], None] | None = None,
    ) -> tuple[Network, Source]: ...


def corr_ids() -> Callable[[], str]:
    """Correlation ids for one process's requests: a random prefix, then a counter.

    A correlation id only has to tell apart the answers this process waits for,
    which a counter behind a per-process random prefix does as well as the SDK's
    default, a fresh uuid4 per request, whose random bytes cost a system call
    each: on a node's path between an answer and its next request.
    """
    prefix = secrets.token_hex(8)
    counter = itertools.count()
    return lambda: f"sr-{prefix}-{next(counter)}"


def join(
    server_url: str,
    *,
    group: str,
    pid: str,
    token: str | None = None,
    ttl: float = config.DEFAULT_NODE_TTL,
    connection: tuple[Network, Source] | None = None,
    subscription_refresh_secs: float = 60.0,
    on_first_connect: Callable[[], None] | None = None,
) -> tuple[Resonate, Source]:
    """Connect to the server as ``pid`` in ``group``. Needs a running event loop.

    ``connection`` is the (network, source) pair to use, made by :func:`links`
    (the gateway wraps the network first); by default :func:`links` makes one.
    """
    network, stream = connection or links(
        server_url, group=group, pid=pid, token=token, on_first_connect=on_first_connect
    )
    ids = corr_ids()
    heartbeat = IntervalHeartbeat(pid, ttl / 2, Sender(Transport(network), token, corr_id=ids))
    resonate = Resonate(
        network=network,
        sources=[stream],
        heartbeat=heartbeat,
        group=group,
        pid=pid,
        ttl=timedelta(seconds=ttl),
        token=token,
        env={},
        subscription_refresh_secs=subscription_refresh_secs,
    )
    # The client makes its Sender itself, with the default ids; ``Sender`` takes its
    # ``corr_id`` as a documented argument, so this one is handed the cheaper ones.
    sender = getattr(resonate, "_sender", None)
    if isinstance(sender, Sender):
        sender._corr_id = ids
    return resonate, stream
