"""Build and run the server process (what `asyncrpc server` calls)."""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from resonate_base import PROTOCOL_VERSION

from asyncrpc.runtime import log_lines
from asyncrpc.runtime.serving import GracefulServer, bind
from asyncrpc.server.app import ServerApp
from asyncrpc.server.engine import Engine
from asyncrpc.server.fast_lane import FastLaneProtocol, Lane
from asyncrpc.server.store import Store

logger = logging.getLogger("asyncrpc.server")


def default_db_path(run_dir: Path) -> str:
    return str(run_dir / "server.db")


def build_app(
    db: str,
    token: str | None = None,
    retain_ms: int | None = None,
    open_store: Callable[[str], Store] = Store,
) -> ServerApp:
    """Open the database, recover the state it holds and wrap it in the ASGI app.

    ``open_store`` opens the database (a benchmark's tracer times the commits through it).
    """
    started = time.perf_counter()
    engine = Engine(open_store(db), retain_ms=retain_ms, background_snapshots=True)
    logger.info(
        "recovered %d promises (%d log entries replayed) from %s in %.3fs",
        len(engine.state.promises),
        engine.recovered_entries,
        db,
        time.perf_counter() - started,
    )
    return ServerApp(engine, token)


def uvicorn_config(app: Any, lane: Lane, log_level: str = "info") -> uvicorn.Config:
    """How uvicorn serves the server's ASGI ``app``; ``POST /`` goes to ``lane``'s fast lane.

    ``app`` is the :class:`ServerApp` and ``lane`` the same one, or each wraps it (a
    benchmark's tracer).
    """
    return uvicorn.Config(
        app,
        http=functools.partial(FastLaneProtocol, lane=lane),
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
    damaged. Returns 1 when a commit failed (the state in memory was dropped
    unacknowledged; a restart recovers from the disk), else 0.
    """
    sock = bind(host, port)
    log_lines.configure(
        log_level.upper(), sys.stderr, "%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = build_app(db, token, retain_ms)
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
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0 if app.engine.failed is None else 1
