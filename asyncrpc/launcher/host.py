"""Runs one launcher until it is told to stop: supervisor, control API and state file.

Used by `asyncrpc up` in the foreground and by the detached launcher process
(:mod:`asyncrpc.launcher.daemon`). It boots the plan, keeps the state file in
the run directory current, serves the control API, and on SIGINT / SIGTERM or
`asyncrpc down` stops every process it started before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import uvicorn

from asyncrpc.launcher.control import control_state, new_token
from asyncrpc.launcher.control_api import make_app
from asyncrpc.launcher.errors import LauncherError
from asyncrpc.launcher.pids import ProcessRef
from asyncrpc.launcher.plan import Plan
from asyncrpc.launcher.supervisor import Supervisor


class _ControlServer(uvicorn.Server):
    """uvicorn, minus its signal handlers: the launcher handles SIGINT/SIGTERM itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listen_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections queue up even before uvicorn starts accepting
    return sock


async def run_launcher(
    plan: Plan,
    env: Mapping[str, str],
    *,
    notify: Callable[[str], None] = lambda message: None,
    on_ready: Callable[[dict[str, Any]], None] = lambda snapshot: None,
    follow: Callable[[Supervisor], Awaitable[None]] | None = None,
    keep_failed_state: bool = False,
    clock: Callable[[], float] = time.time,
) -> None:
    """Boot ``plan`` and run until stopped; raise LauncherError when booting fails.

    ``follow`` (e.g. the foreground output streamer) runs alongside and is
    cancelled at the end. With ``keep_failed_state`` a failed boot leaves the
    state file (phase "failed" and the error) for whoever waits on it.
    """
    rundir = plan.rundir
    rundir.ensure()
    me = ProcessRef.of(os.getpid()) or ProcessRef(os.getpid(), "unknown")
    token = new_token()
    sock = _listen_socket()
    control_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop = asyncio.Event()
    supervisor: Supervisor

    def persist() -> None:
        snapshot = supervisor.snapshot()
        rundir.write_state(
            control_state(launcher=me, control_url=control_url, token=token, snapshot=snapshot)
        )

    supervisor = Supervisor(plan, env, clock=clock, notify=notify, on_change=persist)
    app = make_app(supervisor, token, on_down=stop.set)
    server = _ControlServer(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    persist()
    server_task = asyncio.create_task(server.serve(sockets=[sock]))
    follower = asyncio.create_task(follow(supervisor)) if follow else None
    boot = asyncio.create_task(supervisor.boot())
    stopper = asyncio.create_task(stop.wait())
    failure: BaseException | None = None
    try:
        await asyncio.wait({boot, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if boot.done():
            failure = boot.exception()
            if failure is None:
                persist()
                on_ready(supervisor.snapshot())
                await stopper
        else:
            notify("stopping before everything was ready")
            boot.cancel()
            with contextlib.suppress(asyncio.CancelledError, LauncherError):
                await boot
    finally:
        await supervisor.stop_all()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await server_task
        for task in (follower, stopper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        sock.close()
        if failure is not None:
            supervisor.phase = "failed"
            supervisor.error = str(failure)
            persist()
        if failure is None or not keep_failed_state:
            rundir.clear_state()
    if failure is not None:
        if isinstance(failure, LauncherError):
            raise failure
        raise LauncherError(f"the launcher failed: {failure!r}") from failure
    notify("stopped")
