"""The server, the gateway or a worker node, with a tracer that stamps each hop of a flow.

    python -m benchmarks.traced TRACE_FILE server PORT DB
    python -m benchmarks.traced TRACE_FILE gateway PORT SERVER_URL ID
    python -m benchmarks.traced TRACE_FILE node NAME SERVER_URL ID

Each runs the product's own code, built through its seams
(:func:`asyncrpc.server.main.build_app`'s ``open_store``,
:func:`asyncrpc.node.worker.run_worker`'s and
:func:`asyncrpc.gateway.membership.connect`'s ``make_links``), and appends one
line per event to ``TRACE_FILE``: ``<time.time_ns()> <event> <what>``. The
clock is the machine's wall clock, which every process reads alike, so the
lines of all processes sort into one timeline (:mod:`benchmarks.hops` does
that). The events:

- in a node or the gateway: ``send KIND`` as a protocol request leaves,
  ``answer KIND`` when its answer is back, ``msg KIND`` when a pushed message
  (``execute``, ``unblock``) reaches the SDK;
- in the server: ``in`` when uvicorn hands a ``POST /`` to the app (its fast lane),
  ``commit N`` and ``committed N`` around each SQLite commit of N entries,
  ``out KIND`` when the answer leaves, ``push KIND`` when a pushed message is
  written to a poll stream (at once, or handed to uvicorn from the stream's queue).

A stamp costs a few microseconds (a line written to a file), which the
profile then counts in whatever hop it falls in.

With ``ASYNCRPC_BENCH_SERVER_PROFILE=FILE`` in its environment (``--only hops``
passes it on from its own), the server runs under cProfile and writes its
statistics to ``FILE`` when it stops (``python -m pstats FILE``).
"""

from __future__ import annotations

import cProfile
import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec

from asyncrpc.network.join import Links, PollStream, Source, links
from asyncrpc.server.app import PUSH_EXTENSION
from asyncrpc.server.store import Store

_decoder = msgspec.json.Decoder()
#: A file the traced server writes its cProfile statistics to when it stops (not set: no profile).
PROFILE_ENV = "ASYNCRPC_BENCH_SERVER_PROFILE"


class Trace:
    """Appends ``<ns> <event> <what>`` lines to one file, a line at a time."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", buffering=1)  # noqa: SIM115 - open for the process's life

    def mark(self, event: str, what: object = "-") -> None:
        self._file.write(f"{time.time_ns()} {event} {what}\n")


def kind_of(body: str | bytes) -> str:
    """The ``kind`` of a protocol envelope or pushed message ("?" when unreadable)."""
    try:
        kind = _decoder.decode(body).get("kind")
    except (msgspec.DecodeError, AttributeError):
        return "?"
    return kind if isinstance(kind, str) else "?"


# ── Nodes and the gateway: their request channel and message source ──────────


class TracedNetwork:
    """A request channel that stamps each request as it leaves and as its answer returns."""

    def __init__(self, inner: Any, trace: Trace) -> None:
        self._inner = inner
        self._trace = trace

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        kind = kind_of(req)
        self._trace.mark("send", kind)
        answer = await self._inner.send(req, headers)
        self._trace.mark("answer", kind)
        return answer

    async def send_together(
        self, reqs: list[str], headers: dict[str, str] | None = None
    ) -> list[str]:
        """Requests pipelined (the gateway's create and listen), stamped as one exchange."""
        kinds = "+".join(kind_of(req) for req in reqs)
        self._trace.mark("send", kinds)
        answers: list[str] = await self._inner.send_together(reqs, headers)
        self._trace.mark("answer", kinds)
        return answers


class TracedStream(PollStream):
    """The poll stream, stamping each message as it reaches the SDK."""

    trace: Trace

    def recv(self, callback: Callable[[str], None]) -> None:
        def stamped(data: str) -> None:
            self.trace.mark("msg", kind_of(data))
            callback(data)

        super().recv(stamped)


def traced_links(trace: Trace) -> Links:
    """:func:`~asyncrpc.network.join.links`, with both halves stamping (HTTP servers only)."""

    def make(
        server_url: str,
        *,
        group: str,
        pid: str,
        token: str | None = None,
        request_timeout: float | None = None,
        on_first_connect: Callable[[], None] | None = None,
    ) -> tuple[Any, Source]:
        network, _ = links(
            server_url, group=group, pid=pid, token=token, request_timeout=request_timeout
        )
        stream = TracedStream(
            server_url, pid=pid, group=group, auth=token, on_first_connect=on_first_connect
        )
        stream.trace = trace
        return TracedNetwork(network, trace), stream

    return make


# ── The server: requests, commits and pushes ─────────────────────────────────


def traced_store(trace: Trace) -> Callable[[str], Store]:
    class TracedStore(Store):
        def commit(self) -> None:
            staged = self.staged
            if not staged:
                return
            trace.mark("commit", staged)
            super().commit()
            trace.mark("committed", staged)

    return TracedStore


def traced_asgi(app: Any, trace: Trace) -> Any:
    """The server's ASGI app, stamping ``POST /`` in and out and every pushed message."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        if scope["path"] == "/":
            chunks: list[bytes] = []

            async def body() -> dict[str, Any]:
                message = await receive()
                chunks.append(message.get("body", b""))
                return message

            trace.mark("in", "?")
            kind: list[str] = []

            async def answer(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    kind.append(kind_of(b"".join(chunks)))
                    trace.mark("out", kind[0])
                await send(message)

            await app(scope, body, answer)
            return
        if scope["path"].startswith("/poll/"):

            def stamp(frame: bytes) -> None:
                if frame.startswith(b"data: "):
                    for line in frame.split(b"\n\n"):
                        if line.startswith(b"data: "):
                            trace.mark("push", kind_of(line[len(b"data: ") :]))

            async def push(message: dict[str, Any]) -> None:
                stamp(message.get("body", b""))
                await send(message)

            extensions = scope.get("extensions") or {}
            direct = extensions.get(PUSH_EXTENSION)
            if isinstance(direct, dict) and callable(direct.get("write")):
                write_now = direct["write"]

                def stamped(frame: bytes) -> bool:
                    stamp(frame)
                    written: bool = write_now(frame)
                    return written

                scope = {**scope, "extensions": {**extensions, PUSH_EXTENSION: {"write": stamped}}}
            await app(scope, receive, push)
            return
        await app(scope, receive, send)

    return wrapped


class TracedLane:
    """The server's fast lane (``POST /``), stamping each request in and its answer out."""

    def __init__(self, app: Any, trace: Trace) -> None:
        self._app = app
        self._trace = trace

    def post(
        self,
        headers: Any,
        body: bytes,
        respond: Callable[..., None],
        behind: bool = False,
        connection: object | None = None,
    ) -> None:
        trace = self._trace
        trace.mark("in", "?")

        def answered(status: int, answer_headers: Any, content: bytes) -> None:
            trace.mark("out", kind_of(body))
            respond(status, answer_headers, content)

        self._app.post(headers, body, answered, behind, connection)

    def closed(self, connection: object) -> None:
        self._app.closed(connection)


def serve_server(trace: Trace, port: int, db: str) -> int:
    from asyncrpc.runtime import log_lines
    from asyncrpc.runtime.serving import bind
    from asyncrpc.runtime.uvicorn_server import GracefulServer
    from asyncrpc.server.main import build_app, uvicorn_config

    sock = bind("127.0.0.1", port)
    log_lines.configure("INFO", sys.stderr, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = build_app(db, open_store=traced_store(trace))
    config = uvicorn_config(traced_asgi(app, trace), TracedLane(app, trace))
    server = GracefulServer(config, before_shutdown=app.close_streams)
    app.engine.on_failure = server.request_exit
    profile_to = os.environ.get(PROFILE_ENV)
    profiler = cProfile.Profile() if profile_to else None
    try:
        if profiler is not None:
            profiler.enable()
        server.run(sockets=[sock])
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_to)
        sock.close()
    return 0


def serve_node(trace: Trace, name: str, server_url: str, node_id: str) -> int:
    from asyncrpc.node import worker
    from asyncrpc.runtime import event_loop
    from asyncrpc.runtime.process import configure_logging, until_signalled

    settings = worker.node_settings(name, os.environ, server_url=server_url, node_id=node_id)
    configure_logging()
    run = functools.partial(worker.run_worker, settings, make_links=traced_links(trace))
    event_loop.run(until_signalled(lambda stop: run(stop)))
    return 0


def serve_gateway(trace: Trace, port: int, server_url: str, gateway_id: str) -> int:
    from asyncrpc.gateway import main, membership
    from asyncrpc.gateway.settings import gateway_settings
    from asyncrpc.runtime import event_loop
    from asyncrpc.runtime.process import configure_logging
    from asyncrpc.runtime.serving import bind

    settings = gateway_settings(os.environ, port=port, server_url=server_url, gateway_id=gateway_id)
    sock = bind(settings.host, settings.port)
    configure_logging()
    connect = functools.partial(membership.connect, make_links=traced_links(trace))
    try:
        event_loop.run(main.serve(settings, sock, make_client=connect))
    finally:
        sock.close()
    return 0


USAGE = (
    "usage: python -m benchmarks.traced TRACE_FILE server PORT DB | "
    "gateway PORT SERVER_URL ID | node NAME SERVER_URL ID"
)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(USAGE, file=sys.stderr)
        return 2
    trace, role, rest = Trace(argv[0]), argv[1], argv[2:]
    if role == "server" and len(rest) == 2 and rest[0].isdigit():
        return serve_server(trace, int(rest[0]), rest[1])
    if role == "gateway" and len(rest) == 3 and rest[0].isdigit():
        return serve_gateway(trace, int(rest[0]), rest[1], rest[2])
    if role == "node" and len(rest) == 3:
        return serve_node(trace, *rest)
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
