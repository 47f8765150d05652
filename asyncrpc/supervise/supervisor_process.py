"""The supervisor process: the supervisor, its control server and the state file, until stopped.

`asyncrpc up` runs :func:`run_supervisor` in the foreground; a detached `up`
runs it in a process of its own (:mod:`asyncrpc.entrypoints.detached_supervisor`).
It boots the plan, keeps the state file in the run directory current, serves
the control server, and on SIGINT / SIGTERM or `asyncrpc down` stops every
replica it started before returning.

The dashboard is served in this process too, but it is a layer above: its caller
hands it in as a :class:`DashboardOpener` (:func:`asyncrpc.dashboard.serve.open_dashboard`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

import uvicorn

from asyncrpc.runtime.errors import CommandError
from asyncrpc.runtime.serving import bind
from asyncrpc.runtime.signals import handle_stop_signals
from asyncrpc.runtime.uvicorn_server import GracefulServer
from asyncrpc.supervise.control_client import new_token
from asyncrpc.supervise.control_server import ControlAppBuilder, make_app
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.plan import Plan
from asyncrpc.supervise.status import LauncherSnapshot, Phase, RunState
from asyncrpc.supervise.supervisor import Supervisor
from asyncrpc.supervise.template_client import TemplateClient

#: The exit code of a start stopped by Ctrl-C (or SIGTERM): 128 + SIGINT, as shells report it.
INTERRUPTED = 130


class OpenDashboard(Protocol):
    """A dashboard being served, as the supervisor process sees it: something to close."""

    async def close(self) -> None: ...


class DashboardOpener(Protocol):
    """Serves the dashboard of ``supervisor`` on 127.0.0.1:``port`` until closed.

    ``secret`` signs a browser in; the supervisor keeps it in the run's state file only.
    Raises CommandError when it cannot serve (the port is taken).
    """

    async def __call__(
        self, supervisor: Supervisor, env: Mapping[str, str], port: int, secret: str
    ) -> OpenDashboard: ...


async def _open_dashboard(
    supervisor: Supervisor,
    env: Mapping[str, str],
    opener: DashboardOpener | None,
    secret: str,
) -> OpenDashboard | None:
    port = supervisor.plan.dashboard_port
    if not port:
        return None
    if opener is None:
        raise CommandError(
            f"the plan asks for a dashboard on port {port}, but this supervisor process was "
            "started without one to serve"
        )
    return await opener(supervisor, env, port, secret)


async def run_supervisor(
    plan: Plan,
    env: Mapping[str, str],
    *,
    notify: Callable[[str], None] = lambda message: None,
    on_ready: Callable[[LauncherSnapshot], None] = lambda snapshot: None,
    follow: Callable[[Supervisor], Coroutine[Any, Any, None]] | None = None,
    keep_failed_state: bool = False,
    clock: Callable[[], float] = time.time,
    template: socket.socket | None = None,
    server_template: socket.socket | None = None,
    open_dashboard: DashboardOpener | None = None,
    control_app: ControlAppBuilder = make_app,
) -> None:
    """Boot ``plan`` and run until stopped; raise CommandError when booting fails.

    ``follow`` (e.g. the foreground output streamer) runs alongside and is
    cancelled at the end. With ``keep_failed_state`` a failed boot leaves the
    state file (phase "failed" and the error) for whoever waits on it. ``template`` is the
    channel to the template this process was forked from (a detached `up`); without it,
    one is started when a replica is to be forked. ``server_template`` is the channel to
    the template that forks the server, when it has one of its own.
    ``open_dashboard`` serves the dashboard when the plan has a dashboard port.
    ``control_app`` builds the control server's app, in a worker thread (see below).

    SIGINT and SIGTERM are this function's from its first line to its last, so a
    Ctrl-C at any moment of the start runs the same clean-up: whatever had started
    is stopped (a fork still on its way too), and a stop before everything was
    ready is a CommandError with exit code 130. After that, they are the way to
    stop, and end it normally.
    """
    stop = asyncio.Event()
    signalled: list[int] = []

    def on_signal(signum: int) -> None:
        signalled.append(signum)
        stop.set()

    remove_signal_handlers = handle_stop_signals(on_signal)
    try:
        await _supervise(
            plan,
            env,
            stop,
            notify=notify,
            on_ready=on_ready,
            follow=follow,
            keep_failed_state=keep_failed_state,
            clock=clock,
            template=template,
            server_template=server_template,
            open_dashboard=open_dashboard,
            control_app=control_app,
            interrupted=lambda: bool(signalled),
        )
    finally:
        remove_signal_handlers()


async def _supervise(
    plan: Plan,
    env: Mapping[str, str],
    stop: asyncio.Event,
    *,
    notify: Callable[[str], None],
    on_ready: Callable[[LauncherSnapshot], None],
    follow: Callable[[Supervisor], Coroutine[Any, Any, None]] | None,
    keep_failed_state: bool,
    clock: Callable[[], float],
    template: socket.socket | None,
    server_template: socket.socket | None,
    open_dashboard: DashboardOpener | None,
    control_app: ControlAppBuilder,
    interrupted: Callable[[], bool],
) -> None:
    rundir = plan.rundir
    rundir.ensure()
    me = ProcessRef.of(os.getpid()) or ProcessRef(os.getpid(), "unknown")
    token = new_token()
    # The dashboard's sign-in secret: in the state file only (never a command line or a log).
    dashboard_token = new_token() if plan.dashboard_port else None
    sock = bind("127.0.0.1", 0)
    control_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    supervisor: Supervisor | None = None

    unwritten: list[str] = []

    def persist() -> None:
        """Write the state file; a full disk is said once, and never stops what was being done."""
        if supervisor is None:
            return
        snapshot = supervisor.snapshot()
        try:
            rundir.write_state(RunState(me, control_url, token, snapshot, dashboard_token))
        except OSError as error:
            why = error.strerror or str(error)
            if why not in unwritten:
                unwritten.append(why)
                notify(f"cannot write {rundir.state_file} ({why}); `status` may show old news")
            return
        unwritten.clear()

    dashboard: OpenDashboard | None = None
    server: GracefulServer | None = None
    serving: asyncio.Task[None] | None = None
    tasks: list[asyncio.Task[Any]] = []
    boot: asyncio.Task[None] | None = None
    ready = False
    failure: BaseException | None = None
    try:
        forks = await TemplateClient.attach(template) if template is not None else None
        server_forks = None
        if server_template is not None:
            server_forks = await TemplateClient.attach(server_template)
        supervisor = Supervisor(
            plan,
            env,
            clock=clock,
            notify=notify,
            on_change=persist,
            template=forks,
            server_template=server_forks,
        )
        persist()
        # The server's start is asked for first: it starts while the dashboard and the control
        # server are built (a third of a second and more of CPU), on the other core. Their apps
        # are built in a worker thread, so this event loop notices the server's readiness and
        # asks for the other replicas meanwhile. Their sockets listen already, and the plan is
        # ready only once both are served.
        served = asyncio.Event()
        if not stop.is_set():
            boot = asyncio.create_task(supervisor.boot(ready_after=served))
            await asyncio.sleep(0)  # the boot sends its first request
        if dashboard_token:
            dashboard = await _open_dashboard(supervisor, env, open_dashboard, dashboard_token)
        app = await asyncio.to_thread(control_app, supervisor, token, stop.set)
        server = GracefulServer(
            uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False),
            handles_signals=False,
        )
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        served.set()
        if follow:
            tasks.append(asyncio.create_task(follow(supervisor)))
        if boot is not None:
            stopper = asyncio.create_task(stop.wait())
            tasks.append(stopper)
            await asyncio.wait({boot, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if boot.done():
                failure = boot.exception()
                if failure is None:
                    ready = True
                    persist()
                    on_ready(supervisor.snapshot())
                    await stopper
        if not ready and failure is None:
            notify("stopping before everything was ready")
    finally:
        if boot is not None:
            boot.cancel()
            await asyncio.gather(boot, return_exceptions=True)  # its error is `failure`, if any
        if dashboard is not None:
            await dashboard.close()
        if supervisor is not None:
            await supervisor.stop_all()
        if server is not None and serving is not None:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await serving
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        sock.close()
        if failure is not None and supervisor is not None:
            supervisor.phase = Phase.FAILED
            supervisor.error = str(failure)
            persist()
        if failure is None or not keep_failed_state:
            rundir.clear_state()
    if failure is not None:
        if isinstance(failure, CommandError):
            raise failure
        raise CommandError(f"the supervisor failed: {failure!r}") from failure
    if not ready and interrupted():
        raise CommandError("interrupted: stopped everything that had started.", INTERRUPTED)
    notify("stopped")
