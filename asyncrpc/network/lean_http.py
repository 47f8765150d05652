"""Protocol requests to the Resonate server over lean keep-alive HTTP/1.1 (the SDK's ``Network``).

Every durable step of a flow is a few ``POST /`` requests from a node to the
server (acquire, create, suspend, fulfill), so the client's CPU cost per
request bounds how many flows per second the topology carries. This client
does only what the protocol needs: one JSON ``POST`` per request on a pool of
keep-alive connections, the response parsed by httptools (the parser uvicorn
uses). ``docs/architecture.md`` says why it replaces the SDK's aiohttp-based
``HttpConnection``; ``docs/performance.md`` has the measurements.

The contract is the SDK's ``HttpConnection``'s, so a node behaves the same
with either: any HTTP status comes back as the response body; a failure to
reach the server is retried with the backoff given, forever while running;
after :meth:`stop` (or before :meth:`start`) a failure raises
``ConnectorError``. A pooled connection that the server closed (it restarted)
is retried at once on a new connection. Every request has a deadline: a
connection not made within ``connect_timeout`` or an answer not complete
within ``read_timeout`` is a :class:`RequestTimeout` (a ``TimeoutError``,
so an ``OSError``): retried with backoff while running, a
``ConnectorError`` after stop, like any failure to reach the server. Without
it, a server that is stopped (SIGSTOP) or a half-open connection would hold
a step forever. The answer's deadline is kept by one event-loop timer per
connection (:class:`_Connection`), not by an :func:`asyncio.timeout` per
request: a node sends a few requests per step, and each ``asyncio.timeout``
is an object, a timer scheduled and a timer cancelled. Only ``http://`` URLs are served:
:func:`server_network` falls back to the SDK's connection for anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from urllib.parse import urlsplit

import httptools
from resonate.connections import HttpConnection
from resonate.error import ConnectorError
from resonate.retry import Backoff, ExponentialBackoff
from resonate.timing import Sleeper, sleep
from resonate_base.connections import Network

from asyncrpc.runtime import local_socket
from asyncrpc.runtime.moving_deadline import MovingDeadline

logger = logging.getLogger(__name__)

#: Connections open at once, as the SDK's own connection caps them.
MAX_CONNECTIONS = 256
#: Seconds to open a connection, and to receive a whole answer once the request is sent.
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0


class ServerClosed(ConnectionError):
    """The server closed the connection before the response was complete."""


class RequestTimeout(TimeoutError):
    """The server did not accept a connection, or did not answer, in time."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one exchange at a time, its responses parsed by httptools.

    An exchange is one request, or several written together (pipelined): their
    responses come back in order, one waiter each. An exchange not answered in
    full within ``read_timeout`` fails with :class:`RequestTimeout` and closes
    the connection. The deadline is one
    :class:`~asyncrpc.runtime.moving_deadline.MovingDeadline` per connection, set
    by each exchange and cleared once it is answered: a request costs no timer of
    its own and still fails at its own deadline.
    """

    def __init__(self, read_timeout: float, timeout_message: str) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiters: deque[asyncio.Future[bytes]] = deque()
        self.body: list[bytes] = []
        self.received = False  # any byte of the current response
        self.keep_alive = True
        self.closed = False
        self.read_timeout = read_timeout
        self.timeout_message = timeout_message
        #: When the exchange in flight must be answered by.
        self.deadline = MovingDeadline(self._timed_out)

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ServerClosed(f"unreadable HTTP response from the server: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.deadline.cancel()
        self._fail(ServerClosed("the server closed the connection") if exc is None else exc)

    # -- httptools callbacks ---------------------------------------------------

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        chunks = self.body
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        if not self.waiters:  # a response nobody asked for: the connection is out of step
            self.close()
            return
        waiter = self.waiters.popleft()
        if not self.waiters:
            self.deadline.clear()  # the exchange is answered
        if not waiter.done():
            waiter.set_result(body)

    # -- use -------------------------------------------------------------------

    def send(self, requests: list[bytes]) -> list[asyncio.Future[bytes]]:
        """Write ``requests`` in one write; a waiter for each one's response body, in order.

        The waiters fail with :class:`RequestTimeout` (and the connection closes)
        when they are not all answered within ``read_timeout``.
        """
        assert self.transport is not None
        self.received = False
        loop = asyncio.get_running_loop()
        self.deadline.set(loop.time() + self.read_timeout)
        waiters = [loop.create_future() for _ in requests]
        self.waiters.extend(waiters)
        self.transport.write(requests[0] if len(requests) == 1 else b"".join(requests))
        return waiters

    def close(self) -> None:
        self.closed = True
        self.deadline.cancel()
        if self.transport is not None:
            self.transport.close()

    def _timed_out(self) -> None:
        if self.closed or not self.waiters:
            return
        self._fail(RequestTimeout(self.timeout_message))
        self.close()

    def _fail(self, exc: BaseException) -> None:
        waiters, self.waiters = self.waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(exc)


class LeanHttpNetwork:
    """The SDK's request channel to a Resonate server at an ``http://`` URL."""

    def __init__(
        self,
        url: str,
        auth: str | None = None,
        backoff: Backoff | None = None,
        sleeper: Sleeper = sleep,
        max_connections: int = MAX_CONNECTIONS,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        read_timeout: float = READ_TIMEOUT_S,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected an http://host:port URL, got {url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        path = parts.path.rstrip("/") + "/"
        head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        if auth is not None:
            head += f"Authorization: Bearer {header_value(auth)}\r\n"
        self._head = head
        self._backoff = backoff if backoff is not None else ExponentialBackoff()
        self._sleeper = sleeper
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._timeout_message = (
            f"the server at {self._host}:{self._port} sent no answer within {read_timeout:g}s"
        )
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._running = False
        self._stopped = False
        self._stop_event = asyncio.Event()

    async def start(self) -> None:
        self._running = True
        self._stop_event.clear()

    async def stop(self) -> None:
        self._running = False
        self._stopped = True
        self._stop_event.set()
        for connection in list(self._open):
            connection.close()
        self._idle.clear()
        self._open.clear()

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        """``POST`` one envelope; the response body, whatever its status."""
        return (await self._send([self._encode(req, headers)]))[0]

    async def send_together(
        self, reqs: list[str], headers: dict[str, str] | None = None
    ) -> list[str]:
        """``POST`` envelopes pipelined on one connection, in one write; their responses.

        The server reads them in order, so each one sees what the ones before it did
        (the gateway registers a listener with the create of its promise this way).
        Retried as a whole, like :meth:`send`.
        """
        return await self._send([self._encode(req, headers) for req in reqs])

    # -- internals -------------------------------------------------------------

    async def _send(self, requests: list[bytes]) -> list[str]:
        """Exchange encoded ``requests``; retried with backoff while running (see the module)."""
        attempt = 0
        while True:
            if self._stopped:
                raise ConnectorError(RuntimeError("network has been stopped"))
            try:
                return [body.decode() for body in await self._exchange(requests)]
            except OSError as exc:  # refused, reset, closed early (ServerClosed), timed out
                if not self._running:
                    raise ConnectorError(exc) from exc
                delay = self._backoff.delay(attempt)
                logger.warning("HTTP send failed, retrying (backoff=%ss): %s", delay, exc)
                await self._sleep_or_stop(delay)
                if not self._running:
                    raise ConnectorError(exc) from exc
                attempt += 1

    def _encode(self, req: str, headers: dict[str, str] | None) -> bytes:
        body = req.encode()
        head = self._head
        typed = False
        if headers:
            for name, value in headers.items():
                lowered = name.lower()
                if lowered == "content-type":
                    typed = True
                if lowered not in ("content-length", "host"):
                    head += f"{header_value(name)}: {header_value(value)}\r\n"
        if not typed:
            head += "Content-Type: application/json\r\n"
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    async def _exchange(self, requests: list[bytes]) -> list[bytes]:
        """The response bodies of ``requests``, on a pooled connection or a new one."""
        await self._slots.acquire()
        try:
            connection = self._pooled()
            fresh = connection is None
            while True:
                if connection is None:
                    connection = await self._connect()
                try:
                    bodies = [await waiter for waiter in connection.send(requests)]
                except BaseException as exc:
                    # Failed, timed out or cancelled mid-request: the connection is out of step.
                    self._discard(connection)
                    if (
                        fresh
                        or connection.received
                        or not isinstance(exc, OSError)
                        or isinstance(exc, RequestTimeout)
                    ):
                        raise
                    # The server closed a kept-alive connection (it restarted, or
                    # timed the connection out) before answering: try a fresh one.
                    connection, fresh = None, True
                    continue
                if connection.keep_alive and not connection.closed and not self._stopped:
                    self._idle.append(connection)
                else:
                    self._discard(connection)
                return bodies
        finally:
            self._slots.release()

    def _pooled(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
            self._open.discard(connection)
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()

        def protocol() -> _Connection:
            return _Connection(self._read_timeout, self._timeout_message)

        try:
            async with asyncio.timeout(self._connect_timeout):
                local = await local_socket.connect(self._host, self._port)
                if local is not None:
                    _, connection = await loop.create_unix_connection(protocol, sock=local)
                else:
                    _, connection = await loop.create_connection(protocol, self._host, self._port)
        except TimeoutError:
            raise RequestTimeout(
                f"no connection to the server at {self._host}:{self._port} "
                f"within {self._connect_timeout:g}s"
            ) from None
        self._open.add(connection)
        return connection

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    async def _sleep_or_stop(self, seconds: float) -> None:
        napping = asyncio.ensure_future(self._sleeper(seconds))
        stopping = asyncio.ensure_future(self._stop_event.wait())
        try:
            await asyncio.wait({napping, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (napping, stopping):
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending


def header_value(text: str) -> str:
    """``text`` for an HTTP header; a line break in it (header injection) is refused."""
    if "\n" in text or "\r" in text:
        raise ConnectorError(ValueError(f"a line break in an HTTP header is refused: {text!r}"))
    return text


def server_network(url: str, auth: str | None = None, backoff: Backoff | None = None) -> Network:
    """The request channel for ``url``: lean for ``http://``, the SDK's own otherwise."""
    if urlsplit(url).scheme == "http":
        return LeanHttpNetwork(url, auth=auth, backoff=backoff)
    return HttpConnection(url, auth=auth, backoff=backoff)
