"""`asyncrpc up`: decide what to run, check it can run, then run it here or detached.

:func:`prepare` turns the options into a :class:`Plan`, raising before anything
starts when a name is wrong, a launcher already runs in the run directory, or a
port is taken. :func:`run_foreground` runs it in this process until Ctrl-C or
`asyncrpc down`; :func:`start_detached` starts a background launcher
(:mod:`asyncrpc.launcher.daemon`) and returns once everything is ready.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from asyncrpc import config, topology
from asyncrpc.launcher import ports
from asyncrpc.launcher.control import launcher_ref, orphans
from asyncrpc.launcher.errors import LauncherError
from asyncrpc.launcher.plan import ASYNCRPC_PROGRAM, Plan, Slot
from asyncrpc.launcher.rundir import LAUNCHER_LOG, RunDir
from asyncrpc.launcher.supervisor import Supervisor, tail
from asyncrpc.launcher.targets import select


@dataclass
class UpOptions:
    """What `asyncrpc up` was given."""

    targets: Sequence[str] = ()
    scale: Sequence[str] = ()
    delay: Sequence[str] = ()
    server_url: str | None = None
    server_port: int = config.DEFAULT_SERVER_PORT
    gateway_port: int = config.DEFAULT_GATEWAY_PORT
    ttl: float | None = None
    respawn: float | None = None
    ready_timeout: float = 30.0
    program: tuple[str, ...] = ASYNCRPC_PROGRAM


def server_answers(url: str) -> bool:
    """True when anything answers HTTP at ``url`` (a real Resonate server may lack /healthz)."""
    try:
        httpx.get(f"{url}/healthz", timeout=2.0, trust_env=False)
    except httpx.HTTPError:
        return False
    return True


def choose_server(
    options: UpOptions,
    env: Mapping[str, str],
    notify: Callable[[str], None],
    answers: Callable[[str], bool] = server_answers,
) -> tuple[str, bool]:
    """(server URL, embedded?): `--server-url` must answer; RESONATE_URL is used if it answers."""
    if options.server_url:
        url = options.server_url.rstrip("/")
        if not answers(url):
            raise LauncherError(
                f"no server answers at {url} (--server-url). Start that server, or leave "
                "--server-url out to run the embedded server."
            )
        return url, False
    from_env = env.get(config.ENV_SERVER_URL)
    if from_env:
        url = from_env.rstrip("/")
        if answers(url):
            return url, False
        notify(
            f"no server answers at {url} ({config.ENV_SERVER_URL}); "
            f"starting the embedded server on port {options.server_port} instead"
        )
    return f"http://{config.DEFAULT_HOST}:{options.server_port}", True


def check_not_running(rundir: RunDir) -> None:
    """Refuse to start a second launcher in one run directory; forget a dead one's state."""
    state = rundir.read_state()
    if state is None:
        return
    ref = launcher_ref(state)
    if ref is not None and ref.alive():
        raise LauncherError(
            f"a launcher is already running in {rundir.path} (pid {ref.pid}). "
            "See it with `asyncrpc status`, add nodes with `asyncrpc start NODE`, "
            "or stop it with `asyncrpc down`."
        )
    left = orphans(state)
    if left:
        names = ", ".join(name for name, _ in left)
        raise LauncherError(
            f"processes from an earlier launcher in {rundir.path} still run: {names}. "
            "Stop them with `asyncrpc down` first."
        )
    rundir.clear_state()


def prepare(
    options: UpOptions,
    env: Mapping[str, str],
    run_dir: Path,
    notify: Callable[[str], None] = lambda message: None,
) -> Plan:
    """Check everything `up` was given and decide what to run; nothing is started yet."""
    selection = select(options.targets, options.scale, options.delay)
    for name, port in (
        ("--server-port", options.server_port),
        ("--gateway-port", options.gateway_port),
    ):
        if not 0 < port < 65536:
            raise LauncherError(f"{name} {port}: a port is a number from 1 to 65535.", 2)
    if options.ttl is not None and options.ttl <= 0:
        raise LauncherError(f"--ttl {options.ttl:g}: the lease must be a positive number.", 2)
    if options.respawn is not None and options.respawn < 0:
        raise LauncherError(f"--respawn {options.respawn:g}: give a number of seconds >= 0.", 2)
    rundir = RunDir(run_dir)
    check_not_running(rundir)
    server_url, embedded = choose_server(options, env, notify)
    wanted = []
    if embedded:
        wanted.append(("the server", config.DEFAULT_HOST, options.server_port, "--server-port"))
    if selection.gateway:
        wanted.append(("the gateway", config.DEFAULT_HOST, options.gateway_port, "--gateway-port"))
    if embedded and selection.gateway and options.server_port == options.gateway_port:
        raise LauncherError(
            f"the server and the gateway cannot share port {options.server_port}: "
            "choose another with --server-port or --gateway-port."
        )
    ports.check_free(wanted)
    slots = [Slot(topology.SERVER)] if embedded else []
    if selection.gateway:
        slots.append(Slot(topology.GATEWAY))
    for node in selection.workers:
        slots += [Slot(node, replica) for replica in range(1, selection.replica_count(node) + 1)]
    return Plan(
        run_dir=run_dir,
        server_url=server_url,
        embedded_server=embedded,
        server_port=options.server_port,
        gateway_port=options.gateway_port,
        slots=slots,
        delays=dict(selection.delays),
        ttl=options.ttl,
        respawn=options.respawn,
        ready_timeout=options.ready_timeout,
        program=tuple(options.program),
    )


def run_foreground(
    plan: Plan,
    env: Mapping[str, str],
    *,
    notify: Callable[[str], None],
    on_ready: Callable[[dict[str, Any]], None],
    follow: Callable[[Supervisor], Awaitable[None]] | None = None,
) -> None:
    """Run the plan in this process until Ctrl-C or `asyncrpc down`; LauncherError if it fails."""
    from asyncrpc.launcher.host import run_launcher  # uvicorn and FastAPI: only when needed

    asyncio.run(run_launcher(plan, env, notify=notify, on_ready=on_ready, follow=follow))


def start_detached(
    plan: Plan,
    env: Mapping[str, str],
    *,
    timeout: float | None = None,
    sleeper: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Start a background launcher for ``plan``; return its state once everything is ready."""
    rundir = plan.rundir
    rundir.ensure()
    rundir.clear_state()
    rundir.plan_file.write_text(json.dumps(plan.to_json(), indent=1))
    log_path = rundir.log_for(LAUNCHER_LOG)
    with log_path.open("ab") as log:
        offset = log.tell()
        daemon = subprocess.Popen(
            [sys.executable, "-m", "asyncrpc.launcher.daemon", str(plan.run_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    try:
        return _wait_until_ready(plan, daemon, offset, timeout, sleeper)
    except KeyboardInterrupt:
        daemon.terminate()  # the launcher stops whatever it had started
        daemon.wait(timeout=60)
        rundir.clear_state()
        raise LauncherError("interrupted: stopped everything that had started.", 130) from None


def _wait_until_ready(
    plan: Plan,
    daemon: subprocess.Popen[bytes],
    offset: int,
    timeout: float | None,
    sleeper: Callable[[float], None],
) -> dict[str, Any]:
    rundir = plan.rundir
    log_path = rundir.log_for(LAUNCHER_LOG)
    limit = timeout if timeout is not None else 3 * plan.ready_timeout + 30
    deadline = time.monotonic() + limit
    while True:
        state = rundir.read_state()
        ref = launcher_ref(state) if state else None
        if state is not None and ref is not None and ref.pid == daemon.pid:
            if state.get("phase") == "ready":
                return state
            if state.get("phase") == "failed":
                daemon.wait(timeout=30)
                rundir.clear_state()
                raise LauncherError(str(state.get("error") or "the launcher failed to start"))
        code = daemon.poll()
        if code is not None:
            rundir.clear_state()
            lines = tail(log_path, offset) or "(no output)"
            raise LauncherError(
                f"the background launcher exited ({code}) before everything was ready. "
                f"Last lines of {log_path}:\n{lines}"
            )
        if time.monotonic() > deadline:
            daemon.terminate()
            daemon.wait(timeout=60)
            raise LauncherError(
                f"not everything was ready after {limit:g}s; stopped it. Logs: {rundir.logs}."
            )
        sleeper(0.05)
