"""`asyncrpc up`: decide what to run, check it can run, then run it here or detached.

The run directory is claimed first (:meth:`RunDir.claim`: of two `up` s at once,
exactly one goes on). :func:`prepare` turns the options into a :class:`Plan`,
raising before anything starts when a name is wrong, a supervisor already runs
in the run directory, or a port is taken. :func:`run_foreground` runs the
supervisor in this process until Ctrl-C or `asyncrpc down`; :func:`start_detached`
starts a detached supervisor (forked from the template, which this process forks
which the `asyncrpc` program forks before it parses the command line, else this
process forks where it can: :mod:`asyncrpc.ops.up_early`, :mod:`asyncrpc.ops.up_fork`;
else :mod:`asyncrpc.entrypoints.detached_supervisor`), hands it the run directory's
lock, and returns once everything is ready.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from asyncrpc.lesson import topology
from asyncrpc.ops.up_early import EarlyTemplate
from asyncrpc.ops.up_fork import ChildProcess, can_fork, fork_program
from asyncrpc.postgres.schema import SchemaUnavailable, resonate_sql_path
from asyncrpc.runtime import config
from asyncrpc.runtime.errors import CommandError
from asyncrpc.supervise import ports
from asyncrpc.supervise.control_client import orphans
from asyncrpc.supervise.plan import (
    ASYNCRPC_PROGRAM,
    TEMPLATE_MODULE,
    Plan,
    ReplicaSpec,
    template_enabled,
)
from asyncrpc.supervise.rundir import LAUNCHER_LOG, RunDir, RunDirLock
from asyncrpc.supervise.status import LauncherSnapshot, Phase
from asyncrpc.supervise.targets import select

if TYPE_CHECKING:
    from asyncrpc.supervise.supervisor import Supervisor
    from asyncrpc.supervise.supervisor_process import DashboardOpener

# The SDK, psycopg, psutil, asyncio and the supervisor's modules are imported where they are
# used, so `up --detach` hands over to the template (which has them all) without them here.

#: How often `up --detach` reads the supervisor's state while it waits (a small file).
READY_POLL_S = 0.01
#: The servers `up --server` can start.
SERVER_EMBEDDED = "embedded"
SERVER_POSTGRES = "postgres"


@dataclass
class UpOptions:
    """What `asyncrpc up` was given."""

    targets: Sequence[str] = ()
    scale: Sequence[str] = ()
    delay: Sequence[str] = ()
    server_url: str | None = None
    server_port: int = config.DEFAULT_SERVER_PORT
    gateway_port: int = config.DEFAULT_GATEWAY_PORT
    #: The dashboard's port; None: no dashboard (what the crash demo's system runs).
    dashboard_port: int | None = None
    ttl: float | None = None
    respawn: float | None = None
    ready_timeout: float = 30.0
    program: tuple[str, ...] = ASYNCRPC_PROGRAM
    #: Which server `up` starts: `embedded` (asyncrpc server) or `postgres` (resonate-pg).
    server: str = SERVER_EMBEDDED
    #: resonate.sql for `--server postgres` (else ASYNCRPC_RESONATE_SQL).
    schema: str | None = None


def server_answers(url: str) -> bool:
    """True when a server answers at ``url``: :meth:`ServerReader.answers`, the one such check.

    Anything answering HTTP counts (a real Resonate server may lack /healthz); for a
    ``postgresql://`` URL, the database must answer a protocol request (resonate.sql is in it).
    """
    from asyncrpc.readers.server_reader import ServerReader

    timeout = 3.0 if config.is_postgres_url(url) else 2.0
    with ServerReader(url, timeout=timeout) as reader:
        return reader.answers()


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
            what = (
                "no Postgres with resonate.sql applied answers"
                if config.is_postgres_url(url)
                else "no server answers"
            )
            raise CommandError(
                f"{what} at {config.redacted(url)} (--server-url). Start that server, or leave "
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


def postgres_schema(options: UpOptions, env: Mapping[str, str]) -> Path:
    """resonate.sql for `--server postgres`: `--schema`, else ASYNCRPC_RESONATE_SQL."""
    try:
        return resonate_sql_path(env, options.schema)
    except SchemaUnavailable as error:
        raise CommandError(f"--server postgres: {error}", 2) from None


def check_not_running(rundir: RunDir) -> None:
    """Refuse to start a second supervisor in one run directory; forget a dead one's state."""
    state = rundir.read_state()
    if state is None:
        return
    if state.supervisor.alive():
        raise CommandError(
            f"a supervisor (`asyncrpc up`) is already running in {rundir.path} "
            f"(pid {state.supervisor.pid}). "
            "See it with `asyncrpc status`, add nodes with `asyncrpc start NODE`, "
            "or stop it with `asyncrpc down`."
        )
    left = orphans(state)
    if left:
        names = ", ".join(name for name, _ in left)
        raise CommandError(
            f"replicas of an earlier supervisor in {rundir.path} still run: {names}. "
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
    given = [("--server-port", options.server_port), ("--gateway-port", options.gateway_port)]
    if options.dashboard_port is not None:
        given.append(("--dashboard-port", options.dashboard_port))
    for name, port in given:
        if not 0 < port < 65536:
            raise CommandError(f"{name} {port}: a port is a number from 1 to 65535.", 2)
    if options.ttl is not None and options.ttl <= 0:
        raise CommandError(f"--ttl {options.ttl:g}: the lease must be a positive number.", 2)
    if options.respawn is not None and options.respawn < 0:
        raise CommandError(f"--respawn {options.respawn:g}: give a number of seconds >= 0.", 2)
    rundir = RunDir(run_dir)
    check_not_running(rundir)
    schema = None
    if options.server == SERVER_POSTGRES:
        if options.server_url:
            raise CommandError(
                "--server postgres starts a local Postgres; --server-url names a server that "
                "runs already: give one of them.",
                2,
            )
        from asyncrpc.postgres.local import dsn

        schema = postgres_schema(options, env)
        server_url, embedded = dsn(config.DEFAULT_HOST, options.server_port), True
    elif options.server == SERVER_EMBEDDED:
        if options.schema:
            raise CommandError("--schema applies to --server postgres only.", 2)
        server_url, embedded = choose_server(options, env, notify)
    else:
        raise CommandError(
            f"--server {options.server}: valid values are {SERVER_EMBEDDED} (the asyncrpc "
            f"server on SQLite) and {SERVER_POSTGRES} (a local Postgres with resonate.sql).",
            2,
        )
    server_node = topology.POSTGRES if schema else topology.SERVER
    wanted = []
    if embedded:
        what = "Postgres" if schema else "the server"
        wanted.append((what, config.DEFAULT_HOST, options.server_port, "--server-port"))
    if selection.gateway:
        wanted.append(("the gateway", config.DEFAULT_HOST, options.gateway_port, "--gateway-port"))
    if embedded and selection.gateway and options.server_port == options.gateway_port:
        raise CommandError(
            f"the server and the gateway cannot share port {options.server_port}: "
            "choose another with --server-port or --gateway-port."
        )
    if options.dashboard_port:
        wanted.append(
            ("the dashboard", config.DEFAULT_HOST, options.dashboard_port, "--dashboard-port")
        )
    if len({port for _, _, port, _ in wanted}) < len(wanted):
        raise CommandError(
            "the server, the gateway and the dashboard each need a port of their own: "
            "choose others with --server-port, --gateway-port or --dashboard-port."
        )
    ports.check_free(wanted)
    replicas = [ReplicaSpec(server_node)] if embedded else []
    if selection.gateway:
        replicas.append(ReplicaSpec(topology.GATEWAY))
    for node in selection.workers:
        count = selection.replica_count(node)
        replicas += [ReplicaSpec(node, replica) for replica in range(1, count + 1)]
    return Plan(
        run_dir=run_dir,
        server_url=server_url,
        embedded_server=embedded,
        server_port=options.server_port,
        gateway_port=options.gateway_port,
        dashboard_port=options.dashboard_port,
        replicas=replicas,
        delays=dict(selection.delays),
        ttl=options.ttl,
        respawn=options.respawn,
        ready_timeout=options.ready_timeout,
        program=tuple(options.program),
        postgres_schema=str(schema) if schema else None,
    )


def run_foreground(
    plan: Plan,
    env: Mapping[str, str],
    *,
    notify: Callable[[str], None],
    on_ready: Callable[[LauncherSnapshot], None],
    follow: Callable[[Supervisor], Coroutine[Any, Any, None]] | None = None,
    open_dashboard: DashboardOpener | None = None,
    lock: RunDirLock | None = None,
) -> None:
    """Run the plan in this process until Ctrl-C or `asyncrpc down`; CommandError if it fails.

    ``open_dashboard`` serves the dashboard when the plan has a port for it: the dashboard
    sits above ops, so the command that runs `up` hands it in. The run directory's
    ``lock`` (claimed here when not given) is held until then.
    """
    # asyncio, uvicorn and FastAPI: imported only when a supervisor runs here.
    import asyncio

    from asyncrpc.supervise.supervisor_process import run_supervisor

    lock = lock or plan.rundir.claim()
    try:
        asyncio.run(
            run_supervisor(
                plan,
                env,
                notify=notify,
                on_ready=on_ready,
                follow=follow,
                open_dashboard=open_dashboard,
            )
        )
    finally:
        lock.release()


def uses_template(plan: Plan, env: Mapping[str, str]) -> bool:
    """Whether a detached supervisor is forked from a template that the replicas share."""
    return template_enabled(env) and plan.program == ASYNCRPC_PROGRAM


def detached_command(plan: Plan, env: Mapping[str, str]) -> list[str]:
    """How a detached supervisor starts as a program: its template, or (where the template
    is not used) the supervisor itself."""
    if uses_template(plan, env):
        return [sys.executable, "-m", TEMPLATE_MODULE, "--supervise"]
    return [sys.executable, "-m", "asyncrpc.entrypoints.detached_supervisor"]


def start_detached_process(
    plan: Plan,
    env: Mapping[str, str],
    log: BinaryIO,
    lock_fd: int,
    early: EarlyTemplate | None = None,
) -> ChildProcess:
    """The detached supervisor's first process, output to ``log``, holding ``lock_fd``.

    Its template is the ``early`` one, forked before the command line was parsed
    (:mod:`asyncrpc.ops.up_early`: its imports began as this process started), when
    there is one and it still runs; else it is forked from this process where that is
    safe (:mod:`asyncrpc.ops.up_fork`: it finds the interpreter started and Typer and
    the CLI loaded); else it starts as a program. An ``early`` template not used is
    stopped.
    """
    if early is not None:
        if uses_template(plan, env):
            child = early.hand_over(str(plan.run_dir), env, log.fileno(), lock_fd)
            if child is not None:
                return child
        else:
            early.stop()
    handed = {**env, config.ENV_RUN_LOCK_FD: str(lock_fd)}
    if uses_template(plan, env) and can_fork():
        args = ["--supervise", str(plan.run_dir)]
        return fork_program(TEMPLATE_MODULE, args, env=handed, output=log.fileno(), keep=[lock_fd])
    return subprocess.Popen(
        [*detached_command(plan, env), str(plan.run_dir)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=handed,
        start_new_session=True,
        pass_fds=(lock_fd,),
    )


def _is_ours(state_pid: int, detached: int) -> bool:
    """The state file is that of the supervisor just started (it, or forked by it)."""
    if state_pid == detached:
        return True
    import psutil  # once the supervisor is started: `up --detach` hands over without it

    with contextlib.suppress(psutil.Error):
        return psutil.Process(state_pid).ppid() == detached
    return False


#: What a wait for a detached supervisor is told: each new snapshot (None before the first).
Progress = Callable[[LauncherSnapshot | None], None]


@dataclass
class Detached:
    """A detached supervisor on its way up: :meth:`wait` until everything is ready."""

    plan: Plan
    process: ChildProcess
    offset: int

    def wait(
        self,
        timeout: float | None = None,
        sleeper: Callable[[float], None] = time.sleep,
        on_progress: Progress = lambda snapshot: None,
    ) -> LauncherSnapshot:
        """Its snapshot once everything is ready; CommandError if it failed or took too long.

        ``on_progress`` hears of every change while it waits (a replica started or
        became ready), so the caller can show how far it got.
        """
        try:
            return _wait_until_ready(
                self.plan, self.process, self.offset, timeout, sleeper, on_progress
            )
        except KeyboardInterrupt:
            self.process.terminate()  # the supervisor stops whatever it had started
            self.process.wait(timeout=60)
            self.plan.rundir.clear_state()
            raise CommandError("interrupted: stopped everything that had started.", 130) from None


def spawn_detached(
    plan: Plan,
    env: Mapping[str, str],
    lock: RunDirLock | None = None,
    early: EarlyTemplate | None = None,
) -> Detached:
    """Start a detached supervisor for ``plan`` and return at once (the caller may load
    what it prints with meanwhile, on the other core).

    The run directory's ``lock`` (claimed here when not given) goes to the supervisor:
    it inherits the very descriptor, so the lock is never free between this process
    and it, and it holds the lock for its life. ``early``: the template forked as the
    command started (:mod:`asyncrpc.ops.up_early`), used or stopped here.
    """
    rundir = plan.rundir
    try:
        lock = lock or rundir.claim()
        try:
            rundir.clear_state()
            rundir.write_plan(json.dumps(plan.to_json(), indent=1))
            with rundir.open_log(LAUNCHER_LOG) as log:
                offset = log.tell()
                process = start_detached_process(plan, env, log, lock.fd, early)
                early = None
        finally:
            lock.release()  # this process's hold: the supervisor's copy holds the lock now
    finally:
        if early is not None:  # something failed before it was handed its run
            early.stop()
    return Detached(plan, process, offset)


def start_detached(
    plan: Plan,
    env: Mapping[str, str],
    *,
    timeout: float | None = None,
    sleeper: Callable[[float], None] = time.sleep,
    on_progress: Progress = lambda snapshot: None,
    lock: RunDirLock | None = None,
) -> LauncherSnapshot:
    """Start a detached supervisor for ``plan``; its snapshot once everything is ready.

    ``on_progress`` and ``lock``: see :meth:`Detached.wait` and :func:`spawn_detached`.
    """
    return spawn_detached(plan, env, lock).wait(timeout, sleeper, on_progress)


def _wait_until_ready(
    plan: Plan,
    detached: ChildProcess,
    offset: int,
    timeout: float | None,
    sleeper: Callable[[float], None],
    on_progress: Progress,
) -> LauncherSnapshot:
    rundir = plan.rundir
    log_path = rundir.log_for(LAUNCHER_LOG)
    limit = timeout if timeout is not None else 3 * plan.ready_timeout + 30
    deadline = time.monotonic() + limit
    on_progress(None)
    shown: tuple[object, ...] = ()
    while True:
        state = rundir.read_state()
        if state is not None and _is_ours(state.supervisor.pid, detached.pid):
            snapshot = state.snapshot
            seen = (snapshot.phase, *((r.name, r.state) for r in snapshot.replicas))
            if seen != shown:
                shown = seen
                on_progress(snapshot)
            if snapshot.phase is Phase.READY:
                return snapshot
            if snapshot.phase is Phase.FAILED:
                detached.wait(timeout=30)
                rundir.clear_state()
                raise CommandError(snapshot.error or "the supervisor failed to start")
        code = detached.poll()
        if code is not None:
            from asyncrpc.supervise.log_files import tail

            rundir.clear_state()
            lines = tail(log_path, offset) or "(no output)"
            raise CommandError(
                f"the detached supervisor exited ({code}) before everything was ready. "
                f"Last lines of {log_path}:\n{lines}"
            )
        if time.monotonic() > deadline:
            detached.terminate()
            detached.wait(timeout=60)
            raise CommandError(
                f"not everything was ready after {limit:g}s; stopped it. Logs: {rundir.logs}."
            )
        sleeper(READY_POLL_S)
