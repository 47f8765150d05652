"""uvicorn's HTTP protocol with a lane for the flow routes: answered on the socket, in one write.

A flow route is the gateway's hot path, and for each request uvicorn builds an
ASGI request cycle with its own event, starts a task that runs the app on the
next turn of the event loop, checks every header of the answer against two
regular expressions and writes the answer in two writes (its head, then its
body). On loopback a write is the costly part: the kernel does the receiving
side's work in the writer's system call. :class:`FlowLaneProtocol` is uvicorn's
protocol as :class:`~asyncrpc.runtime.lean_protocol.LeanHttpToolsProtocol` trims it
(an ASGI scope made only for a request that takes the ASGI way, one keep-alive timer
per connection); connections, keep-alive, timeouts, graceful shutdown and every other
route stay uvicorn's and the ASGI app's, and a ``POST`` to a flow route takes the lane
instead:

- the task that answers it starts at once, inside the read that completed the
  request (an eager task), so the flow's first protocol request leaves in that
  same turn of the event loop;
- it passes the same browser guard and gets the same answer as
  :class:`~asyncrpc.gateway.app.GatewayApp` gives the ASGI way
  (:meth:`~asyncrpc.gateway.app.GatewayApp.refusal`,
  :meth:`~asyncrpc.gateway.app.GatewayApp.answer_flow`): status, headers and body;
- the answer leaves in one write, head and body, with a ``content-length``.

A request that asks for ``Expect: 100-continue`` or an upgrade, or that is
pipelined behind a request still being answered on its connection, takes the
ordinary ASGI way, which answers a flow route the same; answers leave in the
order the requests came. The headers an answer carries need no check: the
invocation id, the one value from the request among them, is checked
(:func:`~asyncrpc.gateway.invocations.check_invocation_id`) before any answer
names it.

It relies on uvicorn's ``HttpToolsProtocol`` (its parser callbacks and
per-connection fields), as the server's fast lane does; uvicorn's version is
pinned, and ``tests/unit/test_gateway_lane.py`` checks both ways answer alike.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import Any, Protocol

import httptools
from starlette.responses import Response
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle

from asyncrpc.gateway.app import FlowAnswer
from asyncrpc.runtime.lean_protocol import LeanHttpToolsProtocol

log = logging.getLogger(__name__)

#: The one method the flow routes answer.
FLOW_METHOD = b"POST"


class Lane(Protocol):
    """What answers the lane's requests: :class:`~asyncrpc.gateway.app.GatewayApp`."""

    flows: dict[str, FlowAnswer]

    def refusal(self, headers: list[tuple[bytes, bytes]]) -> Response | None: ...

    async def answer_flow(self, answer: FlowAnswer, query_string: bytes, path: str) -> Response: ...


class _NobodyWaits:
    """A lane request's ``message_event``: nothing reads a lane request's body, or waits."""

    def set(self) -> None:
        pass


_NOBODY_WAITS = _NobodyWaits()


class _Held:
    """Stands for uvicorn's request cycle while a lane request is answered on a connection.

    uvicorn queues a request that arrives while ``self.cycle`` has not completed its
    response, and reads ``disconnected``, ``keep_alive`` and ``message_event`` of it.
    """

    __slots__ = ("disconnected", "keep_alive", "response_complete")

    message_event = _NOBODY_WAITS

    def __init__(self, keep_alive: bool) -> None:
        self.response_complete = False
        self.disconnected = False
        self.keep_alive = keep_alive


class FlowLaneProtocol(LeanHttpToolsProtocol):
    """uvicorn's httptools protocol, trimmed; a ``POST`` to a flow route is answered by ``lane``."""

    def __init__(self, *args: Any, lane: Lane, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lane = lane
        self._flow: FlowAnswer | None = None  # the lane request being read
        self._path = ""
        self._query = b""

    def on_headers_complete(self) -> None:
        self._flow = self._lane_flow()
        if self._flow is None:
            super().on_headers_complete()

    def _lane_flow(self) -> FlowAnswer | None:
        """The flow that answers this request on the lane, or None for the ASGI way."""
        parser = self.parser
        if parser.get_method() != FLOW_METHOD:
            return None
        if self.expect_100_continue or parser.should_upgrade():
            return None
        cycle: RequestResponseCycle | _Held | None = self.cycle
        if cycle is not None and not cycle.response_complete:
            return None  # answers leave in order: not past a request still being answered
        url = httptools.parse_url(self.url)
        path = url.path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)  # as uvicorn hands the path to the app
        flow = self.lane.flows.get(self.root_path + path)
        if flow is not None:
            self._path = self.root_path + path
            self._query = url.query or b""
        return flow

    def on_body(self, body: bytes) -> None:
        if self._flow is None:
            super().on_body(body)
        # A flow route reads no body, as its ASGI route does not.

    def on_message_complete(self) -> None:
        flow, self._flow = self._flow, None
        if flow is None:
            super().on_message_complete()
            return
        parser = self.parser
        keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()
        held = _Held(keep_alive)
        self.cycle = held  # type: ignore[assignment]
        refusal = self.lane.refusal(self.headers)
        if refusal is not None:
            self._write(held, refusal)
            return
        task = asyncio.Task(
            self._answer(held, flow, self._query, self._path), loop=self.loop, eager_start=True
        )
        if not task.done():
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)

    async def _answer(self, held: _Held, flow: FlowAnswer, query: bytes, path: str) -> None:
        try:
            self._write(held, await self.lane.answer_flow(flow, query, path))
        except Exception:
            # answer_flow answers every error; this is a bug here: end the connection
            # rather than leave its caller waiting, as uvicorn does for an app's.
            log.exception("answering POST %s on the flow lane failed", path)
            self.transport.close()

    def _write(self, held: _Held, response: Response) -> None:
        held.response_complete = True
        transport = self.transport
        if held.disconnected or transport.is_closing():
            return
        head: list[bytes | memoryview] = [STATUS_LINE[response.status_code]]
        for name, value in (*self.server_state.default_headers, *response.raw_headers):
            head += [name, b": ", value, b"\r\n"]
        if not held.keep_alive:
            head.append(b"connection: close\r\n")
        head += [b"\r\n", response.body]
        transport.write(b"".join(head))
        if held.keep_alive:
            self.on_response_complete()  # the next request queued behind, or keep-alive
        else:
            transport.close()


def protocol_for(lane: Lane) -> type[FlowLaneProtocol]:
    """The protocol class uvicorn's ``http`` setting takes, its flow routes answered by ``lane``."""

    class LaneProtocol(FlowLaneProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, lane=lane, **kwargs)

    return LaneProtocol
