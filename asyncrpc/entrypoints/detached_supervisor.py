"""The detached supervisor's entry point (`python -m asyncrpc.entrypoints.detached_supervisor DIR`).

`asyncrpc up --detach` writes the plan to RUN_DIR/plan.json and starts this in a
new session with its output going to logs/launcher.log, handing it the run
directory's lock as an inherited file descriptor (ASYNCRPC_RUN_LOCK_FD), which it
holds until it exits. It runs the plan like a
foreground `up` (without streaming) until `asyncrpc down` or SIGTERM; a failed
start is left in the state file for the waiting `up --detach` to report.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from asyncrpc.runtime import config
from asyncrpc.runtime.errors import CommandError, SettingsError
from asyncrpc.runtime.numbers import WholeNumber
from asyncrpc.supervise.plan import Plan
from asyncrpc.supervise.rundir import RunDir
from asyncrpc.supervise.supervisor_process import run_supervisor

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import ModuleType

    from asyncrpc.supervise.supervisor import Supervisor
    from asyncrpc.supervise.supervisor_process import DashboardOpener, OpenDashboard


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} supervisor: {message}", flush=True)


#: The module that serves the dashboard: imported once the supervisor has asked for the server.
DASHBOARD_MODULE = "asyncrpc.dashboard.serve"


async def _open_dashboard(
    supervisor: Supervisor,
    env: Mapping[str, str],
    port: int,
    secret: str,
    load: Callable[[str], ModuleType] = importlib.import_module,
) -> OpenDashboard:
    """:func:`asyncrpc.dashboard.serve.open_dashboard`, its module loaded (``load``) when called.

    The supervisor calls it once it has asked for the server. The module loads in a worker
    thread (a third of a second of CPU and more): the event loop meanwhile sends the
    supervisor's requests to the templates and notices the server's readiness, so the
    replicas start while the dashboard loads, instead of after it.
    """
    serve = await asyncio.to_thread(load, DASHBOARD_MODULE)
    opener: DashboardOpener = serve.open_dashboard
    return await opener(supervisor, env, port, secret)


def main(
    argv: list[str] | None = None,
    template: socket.socket | None = None,
    server_template: socket.socket | None = None,
) -> int:
    """Run the plan in RUN_DIR; ``template`` when forked from the template (its channel), and
    ``server_template``, the channel to the template that forks the server."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m asyncrpc.entrypoints.detached_supervisor RUN_DIR", file=sys.stderr)
        return 2
    rundir = RunDir(Path(args[0]).resolve())
    handed = os.environ.pop(config.ENV_RUN_LOCK_FD, None)  # the replicas get no such thing
    try:
        if handed is None:
            lock = rundir.claim()
        else:
            lock = rundir.adopt(WholeNumber(0, 999_999_999).read(handed, config.ENV_RUN_LOCK_FD))
    except (CommandError, SettingsError) as error:
        _log(f"not starting: {error}")
        return 1
    plan = Plan.from_json(json.loads(rundir.plan_file.read_text()))
    _log(f"pid {os.getpid()}, run directory {plan.run_dir}")
    open_dashboard: DashboardOpener | None = None
    if plan.dashboard_port:  # its web stack is imported only when it is served
        open_dashboard = _open_dashboard
    try:
        asyncio.run(
            run_supervisor(
                plan,
                os.environ,
                notify=_log,
                on_ready=lambda snapshot: _log("everything is ready"),
                keep_failed_state=True,
                template=template,
                server_template=server_template,
                open_dashboard=open_dashboard,
            )
        )
    except CommandError as error:
        _log(f"failed: {error}")
        return 1
    finally:
        lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
