"""A dashboard that answers on its own: a supervisor that runs nothing, a server nobody runs."""

from __future__ import annotations

import sys
from pathlib import Path

from asyncrpc.dashboard.access import Access
from asyncrpc.dashboard.app import Dashboard
from asyncrpc.dashboard.demo_run import DemoCommand, DemoRun
from asyncrpc.readers.server_reader import AsyncServerReader
from asyncrpc.supervise.plan import Plan
from asyncrpc.supervise.supervisor import Supervisor
from harness.isolation import free_port

#: The port the dashboard believes it serves on (its access rules check the Host header).
PORT = 5999
#: The run's secret the supervisor hands the dashboard.
SECRET = "run-secret"


def dashboard(
    tmp_path: Path, token: str | None = None, port: int = PORT, secret: str = SECRET
) -> Dashboard:
    """A dashboard over a supervisor that runs nothing, its server reader answered by nobody."""
    nobody = f"http://127.0.0.1:{free_port()}"
    plan = Plan(run_dir=tmp_path, server_url=nobody, embedded_server=True, dashboard_port=port)
    command = DemoCommand((sys.executable, "-c", "print('demo')"), tmp_path / "demo", free_port)
    return Dashboard(
        supervisor=Supervisor(plan, {}),
        reader=AsyncServerReader(nobody, timeout=2.0),
        demo=DemoRun(command, {}),
        access=Access(port, secret, token),
    )
