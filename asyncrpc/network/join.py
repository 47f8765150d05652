"""Join a process (worker node or gateway) to the Resonate server, in a group.

A process has two identities: its *unique id* (the SDK's ``pid``: unicast,
the server addresses this one process) and its *group* (anycast: any one
member of the group gets work sent to the group). :func:`join` builds the
SDK's client with this project's transports: the lean HTTP client for
requests, the SDK's SSE poll source read by a connection of its own
(:class:`PollStream`, which hands each message over as it is read and says
when it is connected) for messages, the interval heartbeat, and cheap
correlation ids. For a ``postgresql://`` URL (resonate-pg)
one :class:`~asyncrpc.network.postgres_link.PostgresLink` is both the request
channel and the message source.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import socket
import ssl
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import httptools
from resonate.connections import SSEConnection
from resonate.connections.sse import SseFramer
from resonate.resonate import Resonate
from resonate.retry import ExponentialBackoff
from resonate.send import Sender
from resonate.transport import Transport
from resonate_base.connections import Network

from asyncrpc.network.bounded import BoundedNetwork
from asyncrpc.network.eager import eager_tasks
from asyncrpc.network.health import HEALTHY, LinkHealth
from asyncrpc.network.heartbeat import IntervalHeartbeat
from asyncrpc.network.lean_http import header_value, server_network
from asyncrpc.network.leases import KeptLeases, LeasedNetwork, Leases, take_carried
from asyncrpc.runtime import config, local_socket
from asyncrpc.runtime.keepalive import keepalive_socket

if TYPE_CHECKING:
    from asyncrpc.network.postgres_link import PostgresLink

logger = logging.getLogger(__name__)

#: Reconnect (and resend) quickly: the SDK's own ladder climbs to a minute,
#: too slow to watch a flow continue after the server restarts in a demo.
RECONNECT = ExponentialBackoff(initial=0.5, factor=2.0, max_delay=2.0)

#: A busy process renews its leases at least this often (s), however long its ttl: the
#: embedded server takes a process that has sent nothing for 3 s since an ``execute`` that
#: carried a lease (its requests and beats are how it is heard) as one that stopped reading.
BEAT_AT_MOST_EVERY_S = 2.0

#: The poll stream is one GET that lasts as long as the process: no time limit once it is
#: open, only a bound on making the connection.
STREAM_CONNECT_TIMEOUT_S = 10.0


class StreamRefused(ConnectionError):
    """The server answered the poll stream's GET with a status other than 2xx."""


class _StreamConnection(asyncio.Protocol):
    """One poll stream's connection: its answer parsed by httptools, its body handed on as read.

    ``on_open`` runs when a 2xx head is parsed, before any chunk of the body is handed to
    ``on_chunk``; ``ended`` is done when the answer ends (the server ended the stream)
    and failed when the connection is lost or its bytes cannot be read.
    """

    def __init__(self, on_open: Callable[[], None], on_chunk: Callable[[bytes], None]) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.status = 0
        self.transport: asyncio.Transport | None = None
        self._on_open = on_open
        self._on_chunk = on_chunk

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception as error:  # unreadable bytes, or a subscriber that failed
            self._end(error)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc or ConnectionResetError("the server closed the poll stream"))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.opened:
            self._on_open()

    def on_body(self, body: bytes) -> None:
        if self.opened:
            self._on_chunk(body)

    def on_message_complete(self) -> None:
        self._end(None)
        self.close()

    @property
    def opened(self) -> bool:
        return 200 <= self.status < 300

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _end(self, error: BaseException | None) -> None:
        if self.ended.done():
            return
        if error is None:
            self.ended.set_result(None)
        else:
            self.ended.set_exception(error)


class PollStream(SSEConnection):
    """The SDK's SSE poll source, kept connected for the whole life of the process.

    It keeps the SDK's addresses, subscribers, start and stop, and reads the stream
    itself, on a connection of its own (asyncio and httptools, the parser of the
    request channel, :mod:`asyncrpc.network.lean_http`) instead of aiohttp's:

    - Each chunk of the stream is framed and its messages handed to the SDK in the
      turn of the event loop that reads it (aiohttp's reader wakes a task that reads
      it on the next turn), and the tasks the SDK starts for a message start eagerly
      (:func:`~asyncrpc.network.eager.eager_tasks`): a node's acquire of the task an
      ``execute`` names leaves in that same turn.
    - It says whether its stream is connected (``connected``, :meth:`health`).
      ``on_first_connect`` runs once, when the first stream opens and before any
      of its messages is handed over, so a ready line comes before any work is
      logged.
    - It never stops listening while it runs: after any failure, a status other
      than 2xx, or the server ending the stream, it connects again after a
      backoff (:data:`RECONNECT`, from its first step once a stream opened). The
      stream has no time limit once open, only one on connecting
      (``connect_timeout``).
    - Its socket sends keepalive probes and has a TCP user timeout
      (:mod:`asyncrpc.runtime.keepalive`): a stream whose link died silently
      fails within seconds and reconnects, instead of waiting, deaf, for TCP
      to give up.
    - A node's stream asks for its executes with their leases
      (:meth:`take_leases`): each arrives with its task acquired for this
      process, and the answer is kept (``kept``) for the SDK's acquire, which
      :func:`join`'s request channel answers without a request
      (:mod:`asyncrpc.network.leases`).
    """

    def __init__(
        self,
        url: str,
        *,
        pid: str,
        group: str,
        auth: str | None = None,
        on_first_connect: Callable[[], None] | None = None,
        connect_timeout: float = STREAM_CONNECT_TIMEOUT_S,
    ) -> None:
        super().__init__(url, pid=pid, group=group, auth=auth, backoff=RECONNECT)
        parts = urlsplit(self._url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._tls = parts.scheme == "https"
        self._path = f"{parts.path.rstrip('/')}/poll/{self._group}/{self._pid}"
        self._headers = f"Host: {parts.netloc}\r\nAccept: text/event-stream\r\n"
        if auth is not None:
            self._headers += f"Authorization: Bearer {header_value(auth)}\r\n"
        self._request = self._plain_request = (
            f"GET {self._path} HTTP/1.1\r\n{self._headers}\r\n".encode()
        )
        #: The leases taken for this process as its executes are sent, until its SDK asks.
        self.kept = KeptLeases(pid, on_stop=self._ask_for_no_leases)
        #: The open stream's connection, while there is one.
        self._connection: _StreamConnection | None = None
        self._connect_timeout = connect_timeout
        self.connected = asyncio.Event()
        self._on_first_connect = on_first_connect
        self._failure: str | None = None
        self._failures = 0

    def take_leases(self, leases: Leases) -> bool:
        """Ask for this process's executes with their leases (a node, never the gateway).

        Asked from the next connection on, as the query of the stream's ``GET``:
        ``lease`` the ttl, ``room`` how many the SDK runs at once now. An SDK with no
        room to tell takes none: its executes come plain.
        """
        room = leases.room()
        if room <= 0:
            return False
        self.kept.take(leases)
        query = f"?lease={leases.ttl_ms}&room={room}"
        self._request = f"GET {self._path}{query} HTTP/1.1\r\n{self._headers}\r\n".encode()
        return True

    def _ask_for_no_leases(self) -> None:
        """The leases stopped (the SDK asks for others): reconnect asking for none.

        The server hands back those it sent on this stream that this process did not take.
        """
        self._request = self._plain_request
        if self._connection is not None:
            self._connection.close()

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

    async def _sse_loop(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while self._running:
                try:
                    await self._follow()
                except Exception as error:
                    self._failure = str(error) or type(error).__name__
                    delay = RECONNECT.delay(self._failures)
                    logger.warning("poll stream failed (%r); reconnecting in %gs", error, delay)
                else:
                    self._failure = "the server ended the stream"
                    delay = RECONNECT.delay(self._failures)
                    logger.info("the server ended the poll stream; reconnecting in %gs", delay)
                self._failures += 1
                await asyncio.sleep(delay)

    async def _follow(self) -> None:
        """Open one stream and hand its messages over until it ends; raise if it fails."""
        framer = SseFramer()

        def on_chunk(chunk: bytes) -> None:
            messages = framer.feed(chunk)
            if messages:
                self._dispatch(messages)

        connection = _StreamConnection(self._opened, on_chunk)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_timeout):
            local = None if self._tls else await local_socket.connect(self._host, self._port)
            sock = local or await self._connect()
            try:
                if local is not None:
                    await loop.create_unix_connection(lambda: connection, sock=local)
                else:
                    await loop.create_connection(
                        lambda: connection,
                        sock=sock,
                        ssl=ssl.create_default_context() if self._tls else None,
                        server_hostname=self._host if self._tls else None,
                    )
            except BaseException:
                sock.close()
                raise
        self._connection = connection
        try:
            assert connection.transport is not None
            connection.transport.write(self._request)
            await connection.ended
            if not connection.opened:
                raise StreamRefused(f"the server answered the poll stream with {connection.status}")
        finally:
            self._connection = None
            connection.close()
            self.connected.clear()

    async def _connect(self) -> socket.socket:
        """A connected socket to the server: each of its host's addresses in turn.

        Made here rather than by ``loop.create_connection(host, port)``, which tries the
        addresses too but offers no hook before connecting: the socket takes its liveness
        options (:func:`keepalive_socket`) first, so the user timeout bounds the connect's
        own retransmissions as well.
        """
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
        failure: OSError = OSError(f"no address for {self._host}")
        for info in infos:
            sock = keepalive_socket(info)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, info[4])
            except OSError as error:
                sock.close()
                failure = error
                continue
            except BaseException:
                sock.close()
                raise
            return sock
        raise failure

    def _opened(self) -> None:
        self._failure = None
        self._failures = 0
        self.connected.set()
        if self._on_first_connect is not None:
            on_first_connect, self._on_first_connect = self._on_first_connect, None
            on_first_connect()

    def _dispatch(self, messages: list[str]) -> None:
        kept = self.kept
        with eager_tasks():
            for data in messages:
                message = take_carried(data, kept)
                for callback in list(self._subscribers):
                    callback(message)


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
    each: on a node's path between an answer and its next request. The ids come
    from built-ins alone (``map`` of ``str.format`` over a counter): no Python
    frame per request.
    """
    ids = map(f"sr-{secrets.token_hex(8)}-{{}}".format, itertools.count())
    return ids.__next__


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
    if isinstance(stream, PollStream):
        network = LeasedNetwork(network, stream.kept)
    ids = corr_ids()
    beat_every = min(ttl / 2, BEAT_AT_MOST_EVERY_S)
    heartbeat = IntervalHeartbeat(pid, beat_every, Sender(Transport(network), token, corr_id=ids))
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
