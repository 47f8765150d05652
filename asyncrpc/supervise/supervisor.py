"""The one owner of the replicas' processes.

A :class:`Supervisor` runs inside the supervisor process (`asyncrpc up`, in the
foreground or detached) on an asyncio loop. It spawns each replica of a
:class:`~asyncrpc.supervise.plan.Plan` in its own session with its output
appended to ``logs/<name>.log``, waits until it is ready (health URL or
READY_MARKER line; never a fixed sleep), watches it exit, optionally respawns
it, and signals only processes it started and that are still the same process
(pid plus start time). Every other command reaches it through the control
server (:mod:`asyncrpc.supervise.control_server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import BinaryIO

from asyncrpc.lesson import topology
from asyncrpc.runtime import config, local_http
from asyncrpc.runtime.errors import CommandError, UsageError
from asyncrpc.runtime.numbers import MAX_REPLICAS
from asyncrpc.supervise import ports
from asyncrpc.supervise.log_files import tail
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.plan import ASYNCRPC_PROGRAM, Plan, ReplicaSpec
from asyncrpc.supervise.rundir import LAUNCHER_LOG
from asyncrpc.supervise.status import (
    LauncherSnapshot,
    Phase,
    ReplicaState,
    ReplicaStatus,
    StartResult,
)
from asyncrpc.supervise.targets import NodeSelector
from asyncrpc.supervise.template_client import (
    ForkedProcess,
    TemplateClient,
    TemplateUnavailable,
    template_enabled,
)

#: A replica's process: spawned by the supervisor, or forked by its template.
ReplicaProcess = asyncio.subprocess.Process | ForkedProcess

#: Seconds a replica gets to exit after SIGTERM before it is killed.
STOP_GRACE = 5.0
#: How often readiness is checked (a log file read, or one request to a health URL).
POLL_INTERVAL = 0.02
#: Seconds a health URL has to answer one check.
HEALTH_TIMEOUT = 1.0


def new_resonate_id(spec: ReplicaSpec) -> str:
    """A fresh unique Resonate id per process start: `b-2-1f3a`, `gateway-9c0d`."""
    suffix = secrets.token_hex(2)
    return f"{spec.node}-{spec.replica}-{suffix}" if spec.is_worker else f"{spec.node}-{suffix}"


def replica_env(env: Mapping[str, str], plan: Plan) -> dict[str, str]:
    """The environment every replica gets: the supervisor's, unbuffered, pointed at the server."""
    result = {key: value for key, value in env.items() if key != config.ENV_NODE_ID}
    result["PYTHONUNBUFFERED"] = "1"
    result[config.ENV_SERVER_URL] = plan.server_url
    return result


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass(eq=False)
class Replica:
    """One replica and the process currently (or last) running it."""

    spec: ReplicaSpec
    delay: float | None = None
    state: ReplicaState = ReplicaState.NEW
    process: ReplicaProcess | None = None
    ref: ProcessRef | None = None
    resonate_id: str | None = None
    started_at: float | None = None
    exit_code: int | None = None
    restarts: int = 0
    spawns: int = 0
    log_start: int | None = None
    became_ready: bool = False
    signalled: int | None = None
    stopping: bool = False
    watcher: asyncio.Task[None] | None = None
    respawner: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def running(self) -> bool:
        return self.state.is_up

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None


class Supervisor:
    """Starts, watches, signals and stops the replicas of one plan."""

    def __init__(
        self,
        plan: Plan,
        env: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.time,
        notify: Callable[[str], None] | None = None,
        on_change: Callable[[], None] | None = None,
        new_id: Callable[[ReplicaSpec], str] = new_resonate_id,
        template: TemplateClient | None = None,
        server_template: TemplateClient | None = None,
    ) -> None:
        self.plan = plan
        self.env = replica_env(env, plan)
        self.replicas: dict[str, Replica] = {}
        self.phase = Phase.STARTING
        self.error: str | None = None
        self._clock = clock
        self._notify = notify or (lambda message: None)
        self._on_change = on_change or (lambda: None)
        self._new_id = new_id
        self._closing = False
        self._use_template = template_enabled(env) and plan.program == ASYNCRPC_PROGRAM
        self._template = template
        #: Where the server is forked from, when not from ``template`` (a detached `up`).
        self._server_template = server_template
        self._template_lock = asyncio.Lock()
        for spec in plan.replicas:
            self._replica(spec)

    # -- bookkeeping -------------------------------------------------------------

    def _replica(self, spec: ReplicaSpec) -> Replica:
        if spec.name not in self.replicas:
            self.replicas[spec.name] = Replica(spec, delay=self.plan.delays.get(spec.node))
            ordered = sorted(self.replicas.values(), key=lambda replica: replica.spec.order)
            self.replicas = {replica.name: replica for replica in ordered}
        return self.replicas[spec.name]

    def _changed(self) -> None:
        self._on_change()

    def _matching(self, selector: NodeSelector) -> list[Replica]:
        self._check_server_is_ours(selector)
        found = [r for r in self.replicas.values() if selector.matches(r.spec.node, r.spec.replica)]
        if not found:
            known = ", ".join(self.replicas) or "nothing"
            raise CommandError(
                f"{selector} is not part of this supervisor (it runs {known}). "
                f"Start it with `asyncrpc start {selector}`."
            )
        return found

    def _check_server_is_ours(self, selector: NodeSelector) -> None:
        if selector.node in topology.SERVER_NODES and selector.node != self.plan.server_node:
            raise CommandError(
                f"{selector.node} was not started by this supervisor (its server is "
                f"{config.redacted(self.plan.server_url)}), so it cannot signal or start it."
            )

    # -- processes ---------------------------------------------------------------

    async def _template_client(self) -> TemplateClient | None:
        """The template replicas are forked from, started on first use; None: spawn."""
        if not self._use_template:
            return None
        async with self._template_lock:
            if self._template is None:
                with self.plan.rundir.open_log(LAUNCHER_LOG) as log:
                    self._template = await TemplateClient.start(
                        self.env, log, run_dir=self.plan.rundir.path
                    )
                self._notify(f"started the template (pid {self._template.pid})")
        return self._template

    async def _launch(self, spec: ReplicaSpec, command: list[str], log: BinaryIO) -> ReplicaProcess:
        """Fork ``command`` from the template where possible, else spawn it.

        A detached `up` has a server template of its own (it loads the server's modules
        while the supervisor's template loads the SDK, on the other core).
        """
        template: TemplateClient | None
        if spec.node == topology.POSTGRES:
            template = None
        elif spec.node == topology.SERVER and self._server_template is not None:
            template = self._server_template if self._use_template else None
        else:
            template = await self._template_client()
        if template is not None:
            args = command[len(ASYNCRPC_PROGRAM) :]
            path = self.plan.rundir.log_for(spec.name)
            try:
                return await template.fork(args, self.env, path, Path.cwd())
            except TemplateUnavailable as error:
                self._use_template = False
                self._notify(f"{error}; spawning replicas instead")
        return await asyncio.create_subprocess_exec(
            *command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )

    async def _spawn(self, replica: Replica) -> tuple[ReplicaProcess, int]:
        spec = replica.spec
        if self._closing:
            raise CommandError(f"not starting {spec.name}: the supervisor is stopping.")
        resonate_id = self._new_id(spec)
        command = self.plan.command(spec, resonate_id, replica.delay, self.env)
        stamp = time.strftime("%H:%M:%S")
        log: BinaryIO | None = None
        try:
            log = self.plan.rundir.open_log(spec.name)
            start = log.tell()
            log.write(f"--- asyncrpc launcher: starting {spec.name} at {stamp}\n".encode())
            log.flush()
        except OSError as error:
            if log is not None:
                with contextlib.suppress(OSError):
                    log.close()
            path = self.plan.rundir.log_for(spec.name)
            raise CommandError(
                f"cannot start {spec.name}: its log {path} cannot be written "
                f"({error.strerror or error}). Free some space (or fix the permissions) "
                f"in {self.plan.run_dir}, then start it again."
            ) from None
        with log:
            if replica.log_start is None:
                replica.log_start = start
            offset = log.tell()
            process = await self._launch(spec, command, log)
        if replica.spawns:
            replica.restarts += 1
        replica.spawns += 1
        replica.process = process
        replica.ref = ProcessRef.of(process.pid) or ProcessRef(process.pid, "unknown")
        replica.resonate_id = resonate_id if spec.node not in topology.SERVER_NODES else None
        replica.state = ReplicaState.STARTING
        replica.started_at = self._clock()
        replica.exit_code = None
        replica.signalled = None
        replica.stopping = False
        replica.became_ready = False
        replica.watcher = asyncio.create_task(self._watch(replica, process))
        self._notify(f"started {spec.name} (pid {process.pid})")
        self._changed()
        return process, offset

    async def _watch(self, replica: Replica, process: ReplicaProcess) -> None:
        code = await process.wait()
        if replica.process is not process:
            return
        replica.exit_code = code
        if replica.stopping:
            replica.state = ReplicaState.STOPPED
        elif replica.signalled is not None or code < 0:
            replica.state = ReplicaState.KILLED
        else:
            replica.state = ReplicaState.EXITED
        if replica.stopping:
            self._notify(f"{replica.name} stopped")
        else:
            self._notify(f"{replica.name} {describe_exit(code)}")
        self._changed()
        respawn = self.plan.respawn
        if (
            respawn is not None
            and replica.became_ready
            and not replica.stopping
            and not self._closing
            and self.phase is Phase.READY
        ):
            self._notify(f"respawning {replica.name} in {respawn:g}s")
            replica.respawner = asyncio.create_task(self._respawn(replica, respawn))

    async def _respawn(self, replica: Replica, after: float) -> None:
        await asyncio.sleep(after)
        if self._closing or replica.running:
            return
        try:
            await self._start_replicas([replica])
        except CommandError as error:
            self._notify(str(error))

    async def _wait_ready(self, replica: Replica, process: ReplicaProcess, offset: int) -> None:
        spec = replica.spec
        url = self.plan.ready_url(spec)
        path = self.plan.rundir.log_for(spec.name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.plan.ready_timeout
        while True:
            if process.returncode is not None:
                raise CommandError(self._start_failure(replica, offset, process.returncode))
            if await self._is_ready(url, path, offset, self.plan.ready_marker(spec)):
                break
            if loop.time() > deadline:
                await self._stop([replica])
                raise CommandError(
                    f"{spec.name} was not ready after {self.plan.ready_timeout:g}s; "
                    f"stopped it. Last lines of {path}:\n{tail(path, offset)}"
                )
            await asyncio.sleep(POLL_INTERVAL)
        if replica.process is process and process.returncode is None:
            replica.state = ReplicaState.RUNNING
            replica.became_ready = True
            self._notify(f"{spec.name} is ready")
            self._changed()

    @staticmethod
    async def _is_ready(url: str | None, path: Path, offset: int, marker: str) -> bool:
        if url is None:
            return marker in tail(path, offset, lines=10_000)
        return await local_http.status_of(url, HEALTH_TIMEOUT) == HTTPStatus.OK

    def _start_failure(self, replica: Replica, offset: int, code: int) -> str:
        spec = replica.spec
        path = self.plan.rundir.log_for(spec.name)
        lines = tail(path, offset) or "(no output)"
        message = f"{spec.name} {describe_exit(code)} at start. Last lines of {path}:\n{lines}"
        hints = {
            topology.SERVER: (self.plan.server_port, "--server-port", "the server"),
            topology.POSTGRES: (self.plan.server_port, "--server-port", "Postgres"),
            topology.GATEWAY: (self.plan.gateway_port, "--gateway-port", "the gateway"),
        }
        if spec.node in hints:
            port, option, what = hints[spec.node]
            if ports.port_in_use(self.plan.host, port):
                message += "\n" + ports.in_use_message(what, self.plan.host, port, option)
        return message

    async def _start_replicas(self, replicas: Iterable[Replica]) -> None:
        """Start them all at once, then wait for all to be ready; raise with every failure.

        The requests go out in order without waiting for each other's answer, so a
        template forks each replica as soon as it may (a node before the gateway, whose
        modules it may still be loading) and each fork costs no round trip of its own.
        """
        todo = list(replicas)
        for replica in todo:
            if replica.respawner is not None and replica.respawner is not asyncio.current_task():
                replica.respawner.cancel()
        starts = await asyncio.gather(
            *(self._spawn(replica) for replica in todo), return_exceptions=True
        )
        spawned = []
        errors: list[BaseException] = []
        for replica, start in zip(todo, starts, strict=True):
            if isinstance(start, BaseException):
                errors.append(start)
            else:
                spawned.append((replica, *start))
        results = await asyncio.gather(
            *(self._wait_ready(replica, process, offset) for replica, process, offset in spawned),
            return_exceptions=True,
        )
        errors += [result for result in results if isinstance(result, BaseException)]
        for error in errors:
            if not isinstance(error, CommandError):
                raise error
        if errors:
            raise CommandError("\n\n".join(str(error) for error in errors))

    async def _wait_exit(self, replicas: list[Replica], timeout: float) -> bool:
        watchers = [r.watcher for r in replicas if r.watcher is not None and not r.watcher.done()]
        if not watchers:
            return True
        _, pending = await asyncio.wait(watchers, timeout=timeout)
        return not pending

    async def _stop(self, replicas: list[Replica], grace: float = STOP_GRACE) -> None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL what is left."""
        for replica in replicas:
            if replica.respawner is not None:
                replica.respawner.cancel()
            replica.stopping = True
            if replica.alive and replica.ref is not None:
                replica.ref.signal(self.plan.stop_signal(replica.spec))
        if await self._wait_exit(replicas, grace):
            return
        for replica in replicas:
            if replica.alive and replica.ref is not None:
                self._notify(f"{replica.name} did not stop within {grace:g}s: killing it")
                replica.ref.signal(signal.SIGKILL)
        await self._wait_exit(replicas, 10.0)

    # -- operations (what the control server offers) -----------------------------

    async def boot(self, ready_after: asyncio.Event | None = None) -> None:
        """Start the plan: the server first, then the gateway and the nodes.

        The phase turns ready once all are ready and ``ready_after`` (what else the
        supervisor serves, set up meanwhile) is set. On any failure everything started is
        stopped again and the error raised.
        """
        try:
            servers = [r for r in self.replicas.values() if r.spec.node in topology.SERVER_NODES]
            others = [r for r in self.replicas.values() if r.spec.node not in topology.SERVER_NODES]
            if servers:
                await self._start_replicas(servers)
            if others:
                await self._start_replicas(others)
            if ready_after is not None:
                await ready_after.wait()
        except BaseException as error:
            self.error = str(error) if isinstance(error, CommandError) else None
            await asyncio.shield(self.stop_all())
            raise
        self.phase = Phase.READY
        self._changed()

    async def start(
        self, selector: NodeSelector, delay: float | None = None, add: bool = False
    ) -> StartResult:
        """Start the matching replicas that are not running (`add`: one more replica)."""
        if self._closing:
            raise CommandError("the supervisor is stopping; start it again with `asyncrpc up`.")
        self._check_server_is_ours(selector)
        node = selector.node
        if add:
            if node not in topology.NODES:
                raise UsageError(f"only worker nodes can have more replicas, not {node}.")
            numbers = [r.spec.replica for r in self.replicas.values() if r.spec.node == node]
            number = max(numbers, default=0) + 1
            if number > MAX_REPLICAS:
                raise UsageError(
                    f"{node} already has replicas up to {node}.{MAX_REPLICAS}, the most a node "
                    f"may have; start a stopped one with `asyncrpc start {node}`."
                )
            candidates = [self._replica(ReplicaSpec(node, number))]
        elif selector.replica is not None:
            candidates = [self._replica(ReplicaSpec(node, selector.replica))]
        else:
            candidates = [r for r in self.replicas.values() if r.spec.node == node]
            candidates = candidates or [self._replica(ReplicaSpec(node))]
        await self._record_exits(candidates)
        todo = [r for r in candidates if not r.running]
        if delay is not None:
            for replica in todo:
                replica.delay = delay
        self._changed()
        if todo:
            await self._start_replicas(todo)
        return StartResult(
            started=[r.name for r in todo],
            already_running=[r.name for r in candidates if r not in todo],
            pids={r.name: r.ref.pid if r.ref else None for r in candidates},
        )

    async def _record_exits(self, replicas: list[Replica], timeout: float = 5.0) -> None:
        """Wait until the exit of each replica whose process has already died is recorded.

        A replica killed from outside (`kill -9 PID`) is gone at once, but its
        watcher records the exit a moment later; a `start` in between must not
        answer "already running".
        """
        watchers = [
            r.watcher
            for r in replicas
            if r.running and r.ref is not None and r.watcher is not None and not r.ref.alive()
        ]
        if watchers:
            await asyncio.wait([asyncio.shield(w) for w in watchers], timeout=timeout)

    async def kill(self, selector: NodeSelector, sig: int = signal.SIGKILL) -> list[str]:
        """Signal every running match (a crash, by default) and wait until it has exited."""
        matching = self._matching(selector)
        running = [r for r in matching if r.running and r.ref is not None]
        if not running:
            states = ", ".join(f"{r.name} {r.state}" for r in matching)
            raise CommandError(
                f"{selector} is not running ({states}). Start it with `asyncrpc start {selector}`."
            )
        for replica in running:
            replica.signalled = sig
            assert replica.ref is not None
            replica.ref.signal(sig)
        wait = 10.0 if sig == signal.SIGKILL else STOP_GRACE * 2
        await self._wait_exit(running, wait)
        still = [r.name for r in running if r.alive]
        if still:
            raise CommandError(
                f"{', '.join(still)} still running {wait:g}s after {signal.Signals(sig).name}; "
                f"`asyncrpc kill {selector} --signal KILL` forces it."
            )
        return [r.name for r in running]

    async def restart(self, selector: NodeSelector) -> list[str]:
        """Stop the matches (SIGTERM) and start replacements; the rest keeps running."""
        matching = self._matching(selector)
        await self._stop([r for r in matching if r.alive])
        await self._start_replicas(matching)
        return [r.name for r in matching]

    async def stop_all(self) -> list[str]:
        """Stop everything, nodes first, the server last. Safe to call more than once."""
        if not self._closing and any(replica.alive for replica in self.replicas.values()):
            self._notify("stopping everything")
        self._closing = True
        self.phase = Phase.STOPPING
        for replica in self.replicas.values():
            if replica.respawner is not None:
                replica.respawner.cancel()
        stopped: list[str] = []
        tiers = (
            [r for r in self.replicas.values() if r.spec.is_worker],
            [r for r in self.replicas.values() if r.spec.node == topology.GATEWAY],
            [r for r in self.replicas.values() if r.spec.node in topology.SERVER_NODES],
        )
        for tier in tiers:
            alive = [r for r in tier if r.alive]
            if alive:
                await self._stop(alive)
                stopped += [r.name for r in alive]
        for template in (self._server_template, self._template):
            if template is not None:
                await template.close()
        self._changed()
        return stopped

    # -- views -------------------------------------------------------------------

    def snapshot(self) -> LauncherSnapshot:
        """Everything `asyncrpc status` shows."""
        now = self._clock()
        has_gateway = any(r.spec.node == topology.GATEWAY for r in self.replicas.values())
        return LauncherSnapshot(
            phase=self.phase,
            error=self.error,
            run_dir=str(self.plan.run_dir),
            server_url=self.plan.server_url,
            server_embedded=self.plan.embedded_server,
            gateway_url=self.plan.gateway_url if has_gateway else None,
            respawn=self.plan.respawn,
            replicas=[self._status(replica, now) for replica in self.replicas.values()],
            dashboard_url=self.plan.dashboard_url,
        )

    def _status(self, replica: Replica, now: float) -> ReplicaStatus:
        started_at = replica.started_at if replica.running else None
        return ReplicaStatus(
            name=replica.name,
            node=replica.spec.node,
            replica=replica.spec.replica,
            group=replica.spec.group,
            id=replica.resonate_id,
            pid=replica.ref.pid if replica.ref else None,
            pid_started=replica.ref.started if replica.ref else None,
            state=replica.state,
            uptime=round(now - started_at, 3) if started_at is not None else None,
            restarts=replica.restarts,
            exit_code=replica.exit_code,
            delay=replica.delay,
            log=str(self.plan.rundir.log_for(replica.name)),
        )
