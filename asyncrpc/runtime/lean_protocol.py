"""uvicorn's httptools protocol with less work per request, for protocols that answer some
requests themselves (the fast lanes).

uvicorn's :class:`~uvicorn.protocols.http.httptools_impl.HttpToolsProtocol` does, for
every request on a connection, work that a request answered without an ASGI cycle does
not need:

- it builds the request's ASGI scope (a dict, with a copy of the app's state) when the
  request begins. :class:`LeanHttpToolsProtocol` builds it in ``on_headers_complete``,
  just before uvicorn's own ``on_headers_complete`` starts the ASGI cycle, so a
  subclass that answers a request itself, without calling it, builds none; the scope
  of every other request is the one uvicorn makes, its headers, URL and
  ``Expect: 100-continue`` read as uvicorn reads them;
- it arms a keep-alive timer after every answer, and cancels it when the next request's
  bytes arrive. Here one :class:`~asyncrpc.runtime.moving_deadline.MovingDeadline` per
  connection keeps the timeout: each answer sets it ``timeout_keep_alive`` seconds on,
  and bytes arriving clear it. So a connection is closed, as by uvicorn, once idle for
  that long, never while a request is being read or answered.

It relies on uvicorn's ``HttpToolsProtocol``: ``on_message_begin`` making the scope
from ``self.url``, ``self.headers`` and ``self.expect_100_continue``;
``_unset_keepalive_if_required`` called when bytes arrive and when the connection is
lost; ``on_response_complete`` starting the next pipelined request (``self.pipeline``,
``_start_asgi_task``) or arming the timer; ``timeout_keep_alive_handler``. uvicorn's
version is pinned in pyproject.toml for this, and the server's fast-lane tests
(``tests/unit/test_server_fast_lane.py``) check scopes and keep-alive against
uvicorn's own protocol.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from asyncrpc.runtime.moving_deadline import MovingDeadline


class LeanHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol: the ASGI scope made only for the ASGI way, one
    keep-alive timer per connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: When an idle connection is closed; cleared while a request is read or answered.
        self._idle_until = MovingDeadline(self._idle_too_long, self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._idle_until.cancel()

    # -- the scope, for the ASGI way only ----------------------------------------------

    def on_message_begin(self) -> None:
        # uvicorn's makes the request's scope here too: see on_headers_complete.
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def on_headers_complete(self) -> None:
        """The ASGI way: the request's scope as uvicorn makes it, then uvicorn's cycle."""
        url, headers, expect_100_continue = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()
        self.url, self.expect_100_continue = url, expect_100_continue
        self.headers = self.scope["headers"] = headers
        super().on_headers_complete()

    # -- keep-alive: one timer per connection ------------------------------------------

    def _unset_keepalive_if_required(self) -> None:
        # uvicorn's cancels its timer here (bytes came in, or the connection is lost);
        # this one marks the connection busy and leaves the timer to lapse.
        self._idle_until.clear()

    def on_response_complete(self) -> None:
        # uvicorn's, but for the timer: the connection goes idle instead of arming one.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        if self.flow.read_paused:
            self.flow.resume_reading()
        if self.pipeline:
            self._idle_until.clear()
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_until.set(self.loop.time() + self.timeout_keep_alive)

    def _idle_too_long(self) -> None:
        """Close the connection: it has been idle ``timeout_keep_alive`` seconds."""
        if not self.transport.is_closing():
            self.timeout_keep_alive_handler()
