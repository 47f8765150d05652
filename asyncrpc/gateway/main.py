"""Running the gateway: uvicorn on a socket we bind, a ready line once it can take requests."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from asyncrpc.gateway.app import GatewayApp, create_app
from asyncrpc.gateway.lane import protocol_for
from asyncrpc.gateway.membership import ClientFactory, connect
from asyncrpc.gateway.settings import GatewaySettings
from asyncrpc.lesson import topology
from asyncrpc.runtime import event_loop
from asyncrpc.runtime.collector import collect_less
from asyncrpc.runtime.process import configure_logging, ready_line
from asyncrpc.runtime.serving import bind
from asyncrpc.runtime.uvicorn_server import GracefulServer

#: How often the gateway looks whether it is ready to say so (only while it starts).
READY_POLL_S = 0.005
#: Objects allocated (net) between two of the garbage collector's young collections.
YOUNG_GC_THRESHOLD = 10_000


async def announce_when_ready(
    server: uvicorn.Server, app: GatewayApp, settings: GatewaySettings
) -> None:
    """Print the ready line once uvicorn listens and the gateway reaches the server."""
    while not (server.started and getattr(app.state, "client", None) is not None):
        await asyncio.sleep(READY_POLL_S)
    while not app.state.client.health().ok:
        await asyncio.sleep(READY_POLL_S)
    print(
        ready_line(
            topology.GATEWAY,
            topology.GATEWAY_GROUP,
            settings.gateway_id,
            settings.server_url,
            url=settings.url,
        ),
        flush=True,
    )


def config(app: GatewayApp) -> uvicorn.Config:
    """How uvicorn serves the gateway: nothing per request that the gateway does not need.

    The flow routes are answered on uvicorn's socket (:mod:`asyncrpc.gateway.lane`).
    No access log: formatting and writing a line per request is paid on every call, and
    each invocation's progress is in the nodes' logs and at ``GET /invocations/{id}``.
    No proxy headers (an ASGI middleware run on every request): nothing sits in front of
    the gateway that would set them. No ``server`` header: it names uvicorn, which no
    caller needs.
    """
    return uvicorn.Config(
        app,
        http=protocol_for(app),
        log_config=None,
        lifespan="on",
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )


async def serve(
    settings: GatewaySettings, sock: socket.socket, make_client: ClientFactory = connect
) -> None:
    """Run the gateway on ``sock`` until SIGTERM/SIGINT; ``make_client`` joins the server."""
    app = create_app(settings, make_client)
    # Everything imported so far lives as long as the process; a flow makes and drops a
    # few thousand objects, nearly all freed by their count alone.
    collect_less(YOUNG_GC_THRESHOLD)
    server = GracefulServer(config(app))
    announcer = asyncio.create_task(announce_when_ready(server, app, settings))
    try:
        await server.serve(sockets=[sock])
    finally:
        announcer.cancel()


def run(settings: GatewaySettings) -> int:
    """Run the gateway in the foreground; 0 after a clean stop. Raises PortInUse."""
    sock = bind(settings.host, settings.port)
    configure_logging()
    try:
        event_loop.run(serve(settings, sock))
    finally:
        sock.close()
    return 0
