"""A dashboard that answers on its own: a supervisor that runs nothing, and a server that
nobody runs or that is the embedded server's engine in this process."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from asyncrpc.dashboard.access import Access
from asyncrpc.dashboard.app import Dashboard
from asyncrpc.dashboard.demo_run import DemoCommand, DemoRun
from asyncrpc.readers.server_reader import AsyncServerReader
from asyncrpc.server.engine import Engine
from asyncrpc.supervise.plan import Plan
from asyncrpc.supervise.supervisor import Supervisor
from harness.isolation import free_port
from harness.launched import Launched

#: The port the dashboard believes it serves on (its access rules check the Host header).
PORT = 5999
#: The run's secret the supervisor hands the dashboard.
SECRET = "run-secret"


class EngineTransport(httpx.AsyncBaseTransport):
    """HTTP requests to the server, answered by the embedded server's engine in this process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        reply = self.engine.handle(await request.aread())
        return httpx.Response(200, content=reply.body)


def dashboard(
    tmp_path: Path,
    token: str | None = None,
    port: int = PORT,
    secret: str = SECRET,
    *,
    engine: Engine | None = None,
    postgres_schema: str | None = None,
) -> Dashboard:
    """A dashboard over a supervisor that runs nothing; its server reader answered by nobody,
    or by ``engine``."""
    nobody = f"http://127.0.0.1:{free_port()}"
    plan = Plan(
        run_dir=tmp_path,
        server_url=nobody,
        embedded_server=True,
        dashboard_port=port,
        postgres_schema=postgres_schema,
    )
    command = DemoCommand((sys.executable, "-c", "print('demo')"), tmp_path / "demo", free_port)
    transport = EngineTransport(engine) if engine is not None else None
    return Dashboard(
        supervisor=Supervisor(plan, {}),
        reader=AsyncServerReader(nobody, timeout=2.0, transport=transport),
        demo=DemoRun(command, {}),
        access=Access(port, secret, token),
    )


def sign_in_url(launched: Launched) -> str:
    """The address `asyncrpc ui --no-open` prints for ``launched``'s run, as a person copies it."""
    ui = launched.cli("ui", "--no-open", timeout=120)
    assert ui.returncode == 0, ui.stderr
    return ui.stdout.strip().removeprefix("dashboard: ")
