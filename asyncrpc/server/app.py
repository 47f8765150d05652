"""The server's HTTP face: protocol requests, poll streams, readiness.

A plain ASGI application (served by uvicorn) with four routes:

- ``POST /``: one protocol envelope in, one out; the HTTP status mirrors
  ``head.status``, as on the real Resonate server, and an error's reason is
  in the ``x-asyncrpc-error`` header;
- ``GET /poll/{group}/{pid}``: a Server-Sent Events stream of ``execute`` and
  ``unblock`` messages for that process; with ``?lease=MS&room=N`` its executes
  carry their tasks acquired for it, ``N`` at most at once (:func:`lease_terms`);
- ``GET /healthz`` (also ``/health``, ``/ready``): readiness, with a summary; 503 once
  its store has failed (it then answers every request 503 and stops);
- ``GET /streams``: which processes are connected (a read view for the CLI);
- ``GET /metrics``: Prometheus' text format (:mod:`asyncrpc.server.metrics`).

Before any route, :class:`~asyncrpc.runtime.browser_guard.BrowserGuard`
refuses what a web page sends (a foreign ``Origin`` or ``Host``, a form's
body type), so a page the user opens cannot drive the server; a health check
is refused only for a foreign ``Host``.

It is plain ASGI rather than a framework because the two hot paths (a small
JSON body in and out, and a long-lived stream that must notice a dead peer at
once) are a few lines each, and every layer between costs latency. For the
same reason :mod:`asyncrpc.server.fast_lane` hands ``POST /`` to
:meth:`ServerApp.post` straight from uvicorn's HTTP parser, without an ASGI
request cycle; both ways answer alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from resonate_base import PROTOCOL_VERSION

from asyncrpc.runtime.browser_guard import BrowserGuard
from asyncrpc.server import metrics
from asyncrpc.server.engine import Engine, Reply
from asyncrpc.server.protocol import (
    MAX_BODY_BYTES,
    ProtocolError,
    check_name,
    detail_header,
    error_envelope,
    stream_safe,
)
from asyncrpc.server.router import Message, Stream

logger = logging.getLogger("asyncrpc.server.http")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
#: A request's headers as uvicorn gives them: lower-case names, raw values.
Headers = Sequence[tuple[bytes, bytes]]
#: One whole answer: status, headers (without a length), body.
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
#: Sends one whole answer.
Respond = Callable[[int, list[tuple[bytes, bytes]], bytes], None]

#: The ASGI scope extension of a poll stream whose frames can be written at once: its
#: ``"write"`` takes a frame and says whether it was written (the fast lane's ``DirectPush``).
PUSH_EXTENSION = "asyncrpc.push"
#: A comment line is written to an idle stream this often, so a dead peer is noticed.
KEEPALIVE_S = 10.0
#: A stream write that the peer has not taken after this long ends the stream.
WRITE_TIMEOUT_S = 3.0
JSON_HEADERS = [(b"content-type", b"application/json")]
UNAUTHORIZED = {"error": "unauthorized: send 'Authorization: Bearer <token>'"}
TOO_LARGE = f"request body is larger than {MAX_BODY_BYTES} bytes"
#: The header that says why a request failed.
DETAIL_HEADER = b"x-asyncrpc-error"
#: How many header sets that passed the guard and the token :meth:`ServerApp._refusal` keeps.
PASSED_SIZE = 256
#: The header a request's headers are compared without: it differs from request to request,
#: and neither the browser guard nor the token reads it.
LENGTH_HEADER = b"content-length"
SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class ServerApp:
    """ASGI callable wiring HTTP to one :class:`Engine`."""

    def __init__(
        self, engine: Engine, token: str | None = None, guard: BrowserGuard | None = None
    ) -> None:
        self.engine = engine
        self.token = token
        #: What a browser may not send; by default, as for a server on loopback.
        self.guard = guard or BrowserGuard()
        self._closing: asyncio.Event | None = None
        #: Header sets (less their length) that passed the guard and the token, most recent
        #: last: a client sends the same headers with every request.
        self._passed: dict[tuple[tuple[bytes, bytes], ...], None] = {}
        self.metrics = metrics.ServerMetrics(engine, engine.state.kinds)

    def close_streams(self) -> None:
        """End every poll stream (at shutdown); pollers reconnect to the next server."""
        if self._closing is not None:
            self._closing.set()

    def _closing_event(self) -> asyncio.Event:
        if self._closing is None:
            self._closing = asyncio.Event()
        return self._closing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        headers: Headers = scope.get("headers", ())
        if path in ("/healthz", "/health", "/ready"):
            # Only a foreign Host is refused: any page may load a health check, none read it.
            guarded = self.guard.refusal(headers, pages_too=False)
            if guarded is not None:
                await _respond(send, *_refused(guarded.status, guarded.reason))
                return
            shown = bool(self.token) and self._authorized(headers)
            await _json(send, 503 if self.engine.failed else 200, self._health(show_path=shown))
            return
        refusal = self._refusal(headers)
        if refusal is not None:
            await _respond(send, *refusal)
            return
        if path == "/":
            if method != "POST":
                await _json(send, 405, {"error": "use POST / with a protocol envelope"})
                return
            await self._post(receive, send)
        elif path.startswith("/poll/"):
            parts = [unquote(part) for part in path[len("/poll/") :].split("/")]
            if method != "GET" or len(parts) != 2 or not all(parts):
                await _json(send, 400, {"error": "poll streams are GET /poll/{group}/{pid}"})
                return
            try:
                check_name(parts[0], "group")
                check_name(parts[1], "pid")
            except ProtocolError as exc:
                await _respond(send, exc.status, _with_detail(exc.message), error_envelope(400))
                return
            try:
                terms = lease_terms(scope.get("query_string", b""))
            except ValueError as exc:
                await _json(send, 400, {"error": str(exc)})
                return
            await self._poll(parts[0], parts[1], receive, send, _direct_write(scope), terms)
        elif path == "/streams" and method == "GET":
            streams = [s.__dict__ for s in self.engine.router.streams()]
            await _json(send, 200, {"streams": streams})
        elif path == "/metrics" and method == "GET":
            content_type = metrics.CONTENT_TYPE.encode()
            await _respond(send, 200, [(b"content-type", content_type)], self.metrics.exposition())
        else:
            await _json(send, 404, {"error": f"no route {method} {path}"})

    def post(
        self,
        headers: Headers,
        body: bytes,
        respond: Respond,
        behind: bool = False,
        connection: object | None = None,
    ) -> None:
        """``POST /`` with its whole body, answered through ``respond`` once it may leave.

        The fast lane's entry (no ASGI cycle): the same answers as :meth:`__call__`
        gives ``POST /``, the browser guard's 403 or 415, the 401 of a missing token
        and the 413 of a large body included, and the same count in the metrics.
        ``behind``: an earlier request on the same connection is not answered yet
        (:meth:`Engine.answer <asyncrpc.server.engine.Engine.answer>` applies it after that one);
        ``connection`` stands for the connection's unanswered requests.
        """
        refusal = self._refusal(headers)
        if refusal is not None:
            respond(*refusal)
        elif len(body) > MAX_BODY_BYTES:
            respond(413, _with_detail(TOO_LARGE), error_envelope(413))
        else:
            started = time.perf_counter()

            def deliver(reply: Reply) -> None:
                took = time.perf_counter() - started
                respond(*_reply_parts(reply))  # first: its caller's next step waits for it
                self.metrics.request(reply.kind, reply.status, took)

            self.engine.answer(body, deliver, behind, connection)

    def closed(self, connection: object) -> None:
        """A fast-lane connection is gone with requests unanswered (see :meth:`Engine.closed
        <asyncrpc.server.engine.Engine.closed>`)."""
        self.engine.closed(connection)

    # -- routes --------------------------------------------------------------

    async def _post(self, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await _respond(send, 413, _with_detail(TOO_LARGE), error_envelope(413))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        reply = await self.engine.handle_grouped(b"".join(chunks))
        self.metrics.request(reply.kind, reply.status, time.perf_counter() - started)
        await _respond(send, *_reply_parts(reply))

    async def _poll(
        self,
        group: str,
        pid: str,
        receive: Receive,
        send: Send,
        direct: Callable[[bytes], bool] | None = None,
        terms: LeaseTerms | None = None,
    ) -> None:
        """Stream ``group``/``pid``'s messages; ``direct`` writes a frame at once, if given.

        With ``terms`` its executes carry the leases its process asked for.

        With ``direct`` the router writes each message in the turn that routes it (a
        commit's), while nothing waits in the stream's queue; the queue and its writer
        (:meth:`_pump`) take what ``direct`` cannot write at once.
        """
        if terms is None:
            stream = self.engine.router.connect(group, pid)
        else:
            stream = self.engine.router.connect(group, pid, terms.lease_ms, terms.room)
        disconnected = asyncio.ensure_future(
            _first_of(
                _until_disconnect(receive), self._closing_event().wait(), stream.unresponsive.wait()
            )
        )
        pump: asyncio.Future[None] | None = None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            await send(
                {"type": "http.response.body", "body": b": connected\n\n", "more_body": True}
            )
            if direct is not None:
                stream.writer = functools.partial(_write_now, direct)
            pump = asyncio.ensure_future(self._pump(stream, send))
            await asyncio.wait({pump, disconnected}, return_when=asyncio.FIRST_COMPLETED)
            if pump.done() and not pump.cancelled() and pump.exception() is not None:
                raise pump.exception()  # type: ignore[misc]
            with contextlib.suppress(TimeoutError):  # a peer that reads nothing gets no end
                async with asyncio.timeout(WRITE_TIMEOUT_S):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            stream.writer = None
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
            disconnected.cancel()
            self.engine.router.disconnect(stream)

    async def _pump(self, stream: Stream, send: Send) -> None:
        """Write queued messages as they come, a ping when idle, until a write fails.

        It is cancelled when the peer goes away; messages it took but did not write
        go back on the queue for the router to route again. Each message wakes it
        directly (no task or wait set up per message): pushes are on every flow's path.
        Behind the fast lane it writes only what the router could not write at once
        (a stream's first messages, and what comes while its peer does not read).
        """
        queue = stream.queue
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_S):
                    messages = [await queue.get()]
            except TimeoutError:
                if not await _write(send, b": ping\n\n"):
                    return
                continue
            while not queue.empty():
                messages.append(queue.get_nowait())
            frame = b"".join(_frame(m) for m in messages)
            written = False
            stream.pumping = True  # what comes meanwhile queues behind these
            try:
                written = await _write(send, frame)
            finally:
                stream.pumping = False
                if not written:
                    for message in messages:
                        queue.put_nowait(message)
            if not written:
                return

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.engine.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.engine.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- helpers -------------------------------------------------------------

    def _refusal(self, headers: Headers) -> Answer | None:
        """Why a request (any but a health check) is refused, as its answer; or None.

        Every protocol request, poll stream and read view passes here, the fast
        lane's ``POST /`` too (:meth:`post`): a check that all of them must pass goes
        here. The browser guard first (what a web page sends), then the token.

        Both read the headers only, and a client sends the same ones with every request
        but their length: the last :data:`PASSED_SIZE` sets that passed (less the length,
        which is also all either is given of them) pass again without a check.
        """
        key = tuple([(name, value) for name, value in headers if name != LENGTH_HEADER])
        passed = self._passed
        if key in passed:
            return None
        guarded = self.guard.refusal(key)
        if guarded is not None:
            return _refused(guarded.status, guarded.reason)
        if not self._authorized(key):
            return 401, JSON_HEADERS, json.dumps(UNAUTHORIZED).encode()
        if len(passed) >= PASSED_SIZE:
            del passed[next(iter(passed))]
        passed[key] = None
        return None

    def _authorized(self, headers: Headers) -> bool:
        if not self.token:
            return True
        expected = f"Bearer {self.token}".encode()
        for name, value in headers:
            if name == b"authorization":
                return hmac.compare_digest(value, expected)
        return False

    def _health(self, show_path: bool) -> dict[str, Any]:
        """Readiness and counts; the database path only to a caller who sent the token.

        Without a token configured nobody proves who they are, so nobody sees the path.
        A server whose store failed says so instead.
        """
        if self.engine.failed is not None:
            # It answers nothing more (every request is a 503) and is stopping.
            failure = f"the server's store failed: {self.engine.failed}"
            return {"status": "failing", "error": failure}
        state = self.engine.state
        health: dict[str, Any] = {
            "status": "ok",
            "protocol": PROTOCOL_VERSION,
            "promises": len(state.promises) + state.history.count(),
            "tasks": len(state.tasks),
            "streams": len(self.engine.router.streams()),
        }
        if show_path:
            health["database"] = self.engine.store.path
        return health


@dataclass(frozen=True)
class LeaseTerms:
    """What a poll stream's process asks of the leases its executes carry."""

    #: The lease, in ms: the ``ttl`` its SDK's ``task.acquire`` asks for.
    lease_ms: int
    #: How many such leases it holds at once, at most.
    room: int


#: The largest ``lease`` and ``room`` a poll stream may ask for.
MOST_LEASE_MS = 1 << 62
MOST_ROOM = 100_000


def lease_terms(query: bytes) -> LeaseTerms | None:
    """The lease terms of a poll stream's query (``lease=MS&room=N``), None without ``lease``.

    Raises :class:`ValueError` saying what is wrong and what is valid.
    """
    if not query:
        return None
    try:
        fields = parse_qs(query.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise ValueError(
            f"a poll stream's query is lease=MS&room=N (ASCII, each once); got {query[:100]!r}"
        ) from None
    unknown = sorted(set(fields) - {"lease", "room"})
    if unknown:
        raise ValueError(f"unknown poll stream parameters {unknown}; valid: lease, room")
    if "lease" not in fields:
        if "room" in fields:
            raise ValueError("room without lease; a poll stream asks for lease=MS&room=N")
        return None
    lease = _whole(fields["lease"], "lease", MOST_LEASE_MS)
    room = _whole(fields.get("room", ["1"]), "room", MOST_ROOM)
    return LeaseTerms(lease, room)


def _whole(values: list[str], name: str, most: int) -> int:
    if len(values) == 1 and values[0].isascii() and values[0].isdigit():
        value = int(values[0])
        if 1 <= value <= most:
            return value
    raise ValueError(f"{name} must be one whole number from 1 to {most}; got {values}")


def _frame(message: Message) -> bytes:
    """One message as a poll stream's SSE event."""
    return b"data: " + stream_safe(message.body) + b"\n\n"


def _write_now(direct: Callable[[bytes], bool], message: Message) -> bool:
    return direct(_frame(message))


def _direct_write(scope: Scope) -> Callable[[bytes], bool] | None:
    """The scope's way to write a poll stream's frames at once, if its server gives one."""
    extension = (scope.get("extensions") or {}).get(PUSH_EXTENSION)
    write = extension.get("write") if isinstance(extension, dict) else None
    return write if callable(write) else None


def _reply_parts(reply: Reply) -> Answer:
    """A reply's status, headers and body as HTTP sends them."""
    headers = JSON_HEADERS if reply.detail is None else _with_detail(reply.detail)
    return reply.status, headers, reply.body


def _with_detail(detail: str) -> list[tuple[bytes, bytes]]:
    """JSON headers plus why a request failed (the protocol's ``data`` only names the status)."""
    return [*JSON_HEADERS, (DETAIL_HEADER, detail_header(detail))]


def _refused(status: int, reason: str) -> Answer:
    """The browser guard's refusal as HTTP sends it: the reason in the header and the body."""
    return status, _with_detail(reason), json.dumps({"error": reason}).encode()


async def _write(send: Send, frame: bytes) -> bool:
    """Write one frame of a stream; False when the peer does not take it in time.

    A peer that stops reading fills the socket buffers, and then every write
    waits: past :data:`WRITE_TIMEOUT_S` the stream is given up (and its work
    routed again) rather than held open.
    """
    try:
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            await send({"type": "http.response.body", "body": frame, "more_body": True})
    except TimeoutError:
        logger.warning("a poll stream took no data for %ss; closing it", WRITE_TIMEOUT_S)
        return False
    return True


async def _first_of(*waits: Awaitable[Any]) -> None:
    """Return when the first of ``waits`` is done; cancel the rest."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, payload: dict[str, Any]) -> None:
    await _respond(send, status, JSON_HEADERS, json.dumps(payload).encode())
