"""uvicorn's HTTP protocol with a fast lane: ``POST /`` answered without an ASGI request cycle.

Every step of a flow is a few ``POST /`` requests, one after another, so what
uvicorn spends on each request is paid many times per flow. For each request
it builds an ASGI scope, a request-response cycle with its own event, and a
task that runs the app on the next turn of the event loop, and the answer
leaves in two writes (the head, then a chunked body). That is about 100 µs per
request on this project's 2-core machine, more than the server's own work on
it (docs/performance.md). :class:`FastLaneProtocol` is uvicorn's protocol
(connections, keep-alive, timeouts, graceful shutdown and every other route
stay uvicorn's and the ASGI app's): when a request is ``POST /`` it collects
the body as the parser hands it over, gives it to :meth:`ServerApp.post
<asyncrpc.server.app.ServerApp.post>` and writes the answer, head and body, in
one write once the engine releases it (after its commit). A request that asks
for ``Expect: 100-continue``, or that is pipelined behind an ASGI request
still in progress on its connection, takes the ordinary ASGI way; answers
leave in the order the requests came on their connection, whatever order
they are made in.

For ``GET /poll/...`` it also gives the ASGI app a way to write the stream's
frames at once (:class:`DirectPush`, in the scope's extensions under
:data:`~asyncrpc.server.app.PUSH_EXTENSION`): the server writes a commit's
messages in the commit's own turn of the event loop instead of waking a task
per stream to write them on the next one.

The rest of what uvicorn does around each request is cut to what the lane needs
(:class:`~asyncrpc.runtime.lean_protocol.LeanHttpToolsProtocol`): no ASGI scope
for a lane request, one keep-alive timer per connection instead of one armed
and cancelled per request; and the head of an answer whose headers are the
last answer's reuses its bytes.

It relies on uvicorn's ``HttpToolsProtocol`` (its parser callbacks, its
per-connection and per-request fields, ``self.cycle`` read by uvicorn for
pipelining and shutdown), so uvicorn's version is pinned, and
``tests/unit/test_server_fast_lane.py`` checks both ways answer alike, build
the same scope for other routes and close idle connections alike.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Protocol

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle

from asyncrpc.runtime.lean_protocol import LeanHttpToolsProtocol
from asyncrpc.server.app import PUSH_EXTENSION, Answer, Headers, Respond
from asyncrpc.server.protocol import MAX_BODY_BYTES

#: The request that takes the fast lane.
LANE_METHOD, LANE_PATH = b"POST", b"/"
#: The requests whose ASGI scope gets a :class:`DirectPush`: the poll streams.
PUSH_METHOD, PUSH_PREFIX = b"GET", b"/poll/"


class Lane(Protocol):
    """What answers the fast lane's requests: :class:`~asyncrpc.server.app.ServerApp`.

    ``behind`` says that an earlier request on the same connection is not answered yet;
    ``connection`` stands for that connection's unanswered requests.
    """

    def post(
        self,
        headers: Headers,
        body: bytes,
        respond: Respond,
        behind: bool = False,
        connection: object | None = None,
    ) -> None: ...

    def closed(self, connection: object) -> None:
        """The connection ``connection`` stands for is gone with requests unanswered."""


class _Held:
    """Stands for uvicorn's request cycle while fast-lane answers are pending on a connection.

    uvicorn queues a request that arrives while ``self.cycle`` has not completed its
    response, and reads ``disconnected``, ``keep_alive`` and ``message_event`` of it.
    """

    def __init__(self) -> None:
        #: One per request not yet answered, in the order they came: its answer once it is
        #: made (an answer made early waits for those before it on the connection).
        self.answers: deque[list[Answer]] = deque()
        self.disconnected = False
        self.keep_alive = True
        self.message_event = asyncio.Event()

    @property
    def response_complete(self) -> bool:
        return not self.answers


class DirectPush:
    """Writes frames of one streamed response on its connection in the caller's turn.

    A frame is written as uvicorn's own ``http.response.body`` write would write
    it (one chunk of the chunked body), once the response has started and until it
    ends. :meth:`write` says False, writing nothing, whenever that write could not
    happen at once: the response is not streaming in chunks, the peer is gone, or
    the connection's buffers are full (the peer is not reading) and uvicorn's own
    send would wait. The caller then writes through the ASGI ``send`` as usual,
    which waits and times out.
    """

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._cycle = cycle

    def write(self, frame: bytes) -> bool:
        cycle = self._cycle
        if (
            cycle.disconnected
            or cycle.transport.is_closing()
            or cycle.flow.write_paused
            or not cycle.response_started
            or cycle.response_complete
            or not cycle.chunked_encoding
            or not frame
        ):
            return False
        cycle.transport.write(b"%x\r\n%b\r\n" % (len(frame), frame))
        return True


class FastLaneProtocol(LeanHttpToolsProtocol):
    """uvicorn's httptools protocol; ``POST /`` goes to ``lane`` (the server's ``ServerApp``)."""

    def __init__(self, *args: Any, lane: Lane, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lane = lane
        self._body: list[bytes] | None = None  # the fast-lane request being read
        self._size = 0
        self._held: _Held | None = None
        #: The last answer headers written, and their bytes with the server's defaults.
        self._head_of: tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]], bytes] = (
            [],
            [],
            b"",
        )

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        held = self._held
        if held is not None and not held.response_complete:
            self.lane.closed(held)

    def on_headers_complete(self) -> None:
        if self._takes_lane():
            self._body, self._size = [], 0
            return
        self._body = None
        super().on_headers_complete()  # the scope, then uvicorn's ASGI cycle
        cycle = self.cycle
        if (
            isinstance(cycle, RequestResponseCycle)
            and cycle.scope is self.scope
            and self.url.startswith(PUSH_PREFIX)
            and self.parser.get_method() == PUSH_METHOD
        ):
            self.scope["extensions"] = {PUSH_EXTENSION: {"write": DirectPush(cycle).write}}

    def _takes_lane(self) -> bool:
        parser = self.parser
        if self.url != LANE_PATH or parser.get_method() != LANE_METHOD:
            return False
        if self.expect_100_continue or parser.should_upgrade():
            return False
        # Answers leave in order: not past an ASGI request still being answered here.
        cycle: RequestResponseCycle | _Held | None = self.cycle
        return cycle is None or cycle is self._held or cycle.response_complete

    def on_body(self, body: bytes) -> None:
        if self._body is None:
            super().on_body(body)
        elif self._size <= MAX_BODY_BYTES:  # past it, the answer is a 413: keep no more
            self._body.append(body)
            self._size += len(body)

    def on_message_complete(self) -> None:
        if self._body is None:
            super().on_message_complete()
            return
        body, self._body = b"".join(self._body), None
        parser = self.parser
        keep_alive = parser.should_keep_alive() and parser.get_http_version() == "1.1"
        held = self._held
        if held is None:
            held = self._held = _Held()
        behind = not held.response_complete
        if not behind:
            self.cycle = held  # type: ignore[assignment]
        made: list[Answer] = []
        held.answers.append(made)
        if not keep_alive:
            held.keep_alive = False

        def respond(status: int, headers: list[tuple[bytes, bytes]], content: bytes) -> None:
            made.append((status, headers, content))
            self._write(held)

        self.lane.post(self.headers, body, respond, behind, held)

    def _write(self, held: _Held) -> None:
        """Write the answers at the head of ``held``'s that are made, in the requests' order."""
        answers = held.answers
        transport = self.transport
        while answers and answers[0]:
            ((status, headers, content),) = answers.popleft()
            if transport.is_closing():
                continue
            defaults = self.server_state.default_headers
            last_defaults, last_headers, lines = self._head_of
            if headers != last_headers or defaults != last_defaults:
                lines = self._header_lines(defaults, headers)
            transport.write(
                b"%b%bcontent-length: %d\r\n%b\r\n%b"
                % (
                    STATUS_LINE[status],
                    lines,
                    len(content),
                    b"" if held.keep_alive else b"connection: close\r\n",
                    content,
                )
            )
        if answers or transport.is_closing():
            return
        if held.keep_alive:
            self.on_response_complete()  # the next request queued behind, or keep-alive
        else:
            transport.close()

    def _header_lines(
        self, defaults: list[tuple[bytes, bytes]], headers: list[tuple[bytes, bytes]]
    ) -> bytes:
        """The server's default headers and ``headers`` as lines of a response's head, kept
        for the next answers (most have the same headers: the JSON ones)."""
        lines = b"".join(b"%b: %b\r\n" % pair for pair in (*defaults, *headers))
        self._head_of = (list(defaults), list(headers), lines)
        return lines


def protocol_for(lane: Lane) -> type[FastLaneProtocol]:
    """The protocol class uvicorn's ``http`` setting takes, its fast lane answered by ``lane``."""

    class LaneProtocol(FastLaneProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, lane=lane, **kwargs)

    return LaneProtocol
