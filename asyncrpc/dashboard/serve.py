"""Serving the dashboard inside the supervisor process, next to the control server.

The supervisor process already holds what the page shows (the replicas'
state, their logs, the plan) and does what its buttons ask (kill, start,
restart), so the dashboard lives there: no process of its own to watch, no
second copy of the state. :func:`open_dashboard` binds 127.0.0.1:PORT and
serves the app on the supervisor's event loop, signing in whoever shows the
run's secret (see :mod:`asyncrpc.dashboard.access`); :meth:`RunningDashboard.close`
stops it, ending the event streams and any demo it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from asyncrpc.dashboard.access import Access
from asyncrpc.dashboard.app import Dashboard, make_app
from asyncrpc.dashboard.demo_run import DemoCommand, DemoRun
from asyncrpc.lesson import topology
from asyncrpc.readers.server_reader import AsyncServerReader
from asyncrpc.runtime import config
from asyncrpc.runtime.errors import CommandError
from asyncrpc.runtime.serving import PortInUse, bind, free_port
from asyncrpc.runtime.uvicorn_server import GracefulServer
from asyncrpc.supervise.ports import in_use_message
from asyncrpc.supervise.supervisor import Supervisor

#: Seconds open event streams get to end when the dashboard stops.
SHUTDOWN_GRACE = 1


@dataclass
class RunningDashboard:
    dashboard: Dashboard
    server: uvicorn.Server
    task: asyncio.Task[None]
    sock: socket.socket

    async def close(self) -> None:
        self.dashboard.closing.set()
        await self.dashboard.invocations.stop()
        await self.dashboard.demo.stop()
        self.server.should_exit = True
        with contextlib.suppress(Exception):
            await self.task
        await self.dashboard.reader.aclose()
        self.sock.close()


async def open_dashboard(
    supervisor: Supervisor,
    env: Mapping[str, str],
    port: int,
    secret: str,
    *,
    build: Callable[[Dashboard], FastAPI] = make_app,
) -> RunningDashboard:
    """Serve the dashboard of ``supervisor`` on 127.0.0.1:``port`` until closed.

    ``secret`` signs a browser in (the supervisor keeps it in the run's state file).
    ``build`` makes the app, in a worker thread: the first FastAPI app a process builds
    costs it about a quarter of a second of CPU (FastAPI's and pydantic's caches), and the
    supervisor's event loop meanwhile notices the server's readiness and asks for the other
    replicas. Nothing else holds the app until it is built.
    """
    try:
        sock = bind(config.DEFAULT_HOST, port, "--dashboard-port")
    except PortInUse:
        raise CommandError(
            in_use_message("the dashboard", config.DEFAULT_HOST, port, "--dashboard-port")
        ) from None
    plan = supervisor.plan
    token = env.get(config.ENV_TOKEN) or None
    schema = plan.postgres_schema if plan.embedded_server else None
    demo_server = ("--server", topology.POSTGRES, "--schema", schema) if schema else ()
    dashboard = Dashboard(
        supervisor=supervisor,
        reader=AsyncServerReader(plan.server_url, token, timeout=5.0),
        demo=DemoRun(DemoCommand(plan.program, plan.run_dir / "demo", free_port, demo_server), env),
        access=Access(port, secret, token),
    )
    try:
        app = await asyncio.to_thread(build, dashboard)
    except BaseException:
        await dashboard.reader.aclose()
        sock.close()
        raise
    server = GracefulServer(
        uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE,
        ),
        handles_signals=False,
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    return RunningDashboard(dashboard, server, task, sock)
