"""Build and run the server process (what `asyncrpc server` calls)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from resonate_base import PROTOCOL_VERSION

from asyncrpc.runtime import local_socket, log_lines
from asyncrpc.runtime.browser_guard import BrowserGuard, is_loopback
from asyncrpc.runtime.serving import bind
from asyncrpc.runtime.uvicorn_server import GracefulServer
from asyncrpc.server.app import ServerApp
from asyncrpc.server.engine import Engine
from asyncrpc.server.fast_lane import Lane, protocol_for
from asyncrpc.server.store import Store

logger = logging.getLogger("asyncrpc.server")


def default_db_path(run_dir: Path) -> str:
    return str(run_dir / "server.db")


def build_app(
    db: str,
    token: str | None = None,
    retain_ms: int | None = None,
    host: str = "127.0.0.1",
    open_store: Callable[[str], Store] = Store,
) -> ServerApp:
    """Open the database, recover the state it holds and wrap it in the ASGI app.

    ``host`` is the address the server listens on: on a loopback one, a request
    must name this machine in its ``Host`` (see :class:`BrowserGuard`).
    ``open_store`` opens the database (a benchmark's tracer times the commits through it).
    """
    started = time.perf_counter()
    engine = Engine(open_store(db), retain_ms=retain_ms, background_snapshots=True)
    logger.info(
        "recovered %d promises in flight (%d log entries replayed; %d settled on disk) "
        "from %s in %.3fs",
        len(engine.state.promises),
        engine.recovered_entries,
        engine.state.history.count(),
        db,
        time.perf_counter() - started,
    )
    return ServerApp(engine, token, BrowserGuard(loopback_only=is_loopback(host)))


def uvicorn_config(app: Any, lane: Lane, log_level: str = "info") -> uvicorn.Config:
    """How uvicorn serves the server's ASGI ``app``; ``POST /`` goes to ``lane``'s fast lane.

    ``app`` is the :class:`ServerApp` and ``lane`` the same one, or each wraps it (a
    benchmark's tracer).
    """
    return uvicorn.Config(
        app,
        http=protocol_for(lane),
        log_level="warning",
        log_config=None,  # uvicorn's records go through our escaping formatter too
        access_log=log_level.lower() == "debug",
        lifespan="on",
        timeout_graceful_shutdown=1,
        # Nothing sits in front of this server, and each of these costs time per request.
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )


def serve(
    host: str,
    port: int,
    db: str,
    token: str | None,
    log_level: str = "info",
    retain_ms: int | None = None,
) -> int:
    """Run the server in the foreground until SIGTERM/SIGINT; the exit code.

    Raises PortInUse, and StoreError when the database is another server's or
    damaged. Returns 1 when a commit failed and the state could not be read back
    from the disk (a restart recovers what it holds), else 0; a commit that fails
    on a full disk is not that: the server refuses changes until the disk takes
    writes again, and goes on.
    """
    sock = bind(host, port)
    log_lines.configure(
        log_level.upper(), sys.stderr, "%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Processes on this machine reach it through a Unix socket too (see local_socket).
    local = local_socket.listen(host, int(sock.getsockname()[1]))
    sockets = [sock] if local is None else [sock, local]
    app = build_app(db, token, retain_ms, host)
    logger.info(
        "asyncrpc server listening on http://%s:%d database=%s protocol=%s auth=%s",
        host,
        port,
        db,
        PROTOCOL_VERSION,
        "token" if token else "none",
    )
    server = GracefulServer(uvicorn_config(app, app, log_level), before_shutdown=app.close_streams)
    app.engine.on_failure = server.request_exit
    try:
        server.run(sockets=sockets)
    finally:
        for listening in sockets:
            listening.close()
    return 1 if app.engine.fatal else 0
