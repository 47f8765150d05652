"""The one owner of the launcher's child processes.

A :class:`Supervisor` runs inside the `up` process (foreground or detached) on
an asyncio loop. It spawns each process of a :class:`~asyncrpc.launcher.plan.Plan`
in its own session with its output appended to ``logs/<name>.log``, waits until
it is ready (health URL or READY_MARKER line; never a fixed sleep), watches it
exit, optionally respawns it, and signals only processes it started and that are
still the same process (pid plus start time). Every other command reaches it
through the control API (:mod:`asyncrpc.launcher.control`).
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
from typing import Any

import httpx

from asyncrpc import config, topology
from asyncrpc.launcher import ports
from asyncrpc.launcher.errors import LauncherError, UsageError
from asyncrpc.launcher.pids import ProcessRef
from asyncrpc.launcher.plan import Plan, Slot
from asyncrpc.launcher.targets import Selector

#: Seconds a process gets to exit after SIGTERM before it is killed.
STOP_GRACE = 5.0
#: How often readiness is checked.
POLL_INTERVAL = 0.05
#: Lines of a log shown when a process fails to start.
TAIL_LINES = 20


def default_node_id(slot: Slot) -> str:
    """A fresh unique id per process start: `b-2-1f3a`, `gateway-9c0d`."""
    suffix = secrets.token_hex(2)
    return f"{slot.node}-{slot.replica}-{suffix}" if slot.is_worker else f"{slot.node}-{suffix}"


def child_env(env: Mapping[str, str], plan: Plan) -> dict[str, str]:
    """The environment every child gets: the launcher's, unbuffered, pointed at the server."""
    result = {key: value for key, value in env.items() if key != config.ENV_NODE_ID}
    result["PYTHONUNBUFFERED"] = "1"
    result[config.ENV_SERVER_URL] = plan.server_url
    return result


def tail(path: Any, offset: int = 0, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file from byte ``offset`` on."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass(eq=False)
class Child:
    """One slot and the process currently (or last) running it."""

    slot: Slot
    delay: float | None = None
    state: str = "new"
    process: asyncio.subprocess.Process | None = None
    ref: ProcessRef | None = None
    node_id: str | None = None
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
    def label(self) -> str:
        return self.slot.label

    @property
    def running(self) -> bool:
        return self.state in ("starting", "running")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None


class Supervisor:
    """Starts, watches, signals and stops the processes of one plan."""

    def __init__(
        self,
        plan: Plan,
        env: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.time,
        notify: Callable[[str], None] | None = None,
        on_change: Callable[[], None] | None = None,
        new_id: Callable[[Slot], str] = default_node_id,
    ) -> None:
        self.plan = plan
        self.env = child_env(env, plan)
        self.children: dict[str, Child] = {}
        self.phase = "starting"
        self.error: str | None = None
        self._clock = clock
        self._notify = notify or (lambda message: None)
        self._on_change = on_change or (lambda: None)
        self._new_id = new_id
        self._closing = False
        for slot in plan.slots:
            self._child(slot)

    # -- bookkeeping -------------------------------------------------------------

    def _child(self, slot: Slot) -> Child:
        if slot.label not in self.children:
            self.children[slot.label] = Child(slot, delay=self.plan.delays.get(slot.node))
            ordered = sorted(self.children.values(), key=lambda child: child.slot.order)
            self.children = {child.label: child for child in ordered}
        return self.children[slot.label]

    def _changed(self) -> None:
        self._on_change()

    def _matching(self, selector: Selector) -> list[Child]:
        self._check_server_is_ours(selector)
        found = [c for c in self.children.values() if selector.matches(c.slot.node, c.slot.replica)]
        if not found:
            known = ", ".join(self.children) or "nothing"
            raise LauncherError(
                f"{selector} is not part of this launcher (it runs {known}). "
                f"Start it with `asyncrpc start {selector}`."
            )
        return found

    def _check_server_is_ours(self, selector: Selector) -> None:
        if selector.node == topology.SERVER and not self.plan.embedded_server:
            raise LauncherError(
                f"the server at {self.plan.server_url} was not started by this launcher, "
                "so it cannot signal or start it."
            )

    # -- processes ---------------------------------------------------------------

    async def _spawn(self, child: Child) -> tuple[asyncio.subprocess.Process, int]:
        slot = child.slot
        if self._closing:
            raise LauncherError(f"not starting {slot.label}: the launcher is stopping.")
        node_id = self._new_id(slot)
        command = self.plan.command(slot, node_id, child.delay, self.env)
        path = self.plan.rundir.log_for(slot.label)
        self.plan.rundir.ensure()
        stamp = time.strftime("%H:%M:%S")
        with path.open("ab") as log:
            if child.log_start is None:
                child.log_start = log.tell()
            log.write(f"--- asyncrpc launcher: starting {slot.label} at {stamp}\n".encode())
            log.flush()
            offset = log.tell()
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        if child.spawns:
            child.restarts += 1
        child.spawns += 1
        child.process = process
        child.ref = ProcessRef.of(process.pid) or ProcessRef(process.pid, "unknown")
        child.node_id = node_id if slot.node != topology.SERVER else None
        child.state = "starting"
        child.started_at = self._clock()
        child.exit_code = None
        child.signalled = None
        child.stopping = False
        child.became_ready = False
        child.watcher = asyncio.create_task(self._watch(child, process))
        self._notify(f"started {slot.label} (pid {process.pid})")
        self._changed()
        return process, offset

    async def _watch(self, child: Child, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if child.process is not process:
            return
        child.exit_code = code
        if child.stopping:
            child.state = "stopped"
        elif child.signalled is not None or code < 0:
            child.state = "killed"
        else:
            child.state = "exited"
        if child.stopping:
            self._notify(f"{child.label} stopped")
        else:
            self._notify(f"{child.label} {describe_exit(code)}")
        self._changed()
        respawn = self.plan.respawn
        if (
            respawn is not None
            and child.became_ready
            and not child.stopping
            and not self._closing
            and self.phase == "ready"
        ):
            self._notify(f"respawning {child.label} in {respawn:g}s")
            child.respawner = asyncio.create_task(self._respawn(child, respawn))

    async def _respawn(self, child: Child, after: float) -> None:
        await asyncio.sleep(after)
        if self._closing or child.running:
            return
        try:
            await self._start_children([child])
        except LauncherError as error:
            self._notify(str(error))

    async def _wait_ready(
        self, child: Child, process: asyncio.subprocess.Process, offset: int
    ) -> None:
        slot = child.slot
        url = self.plan.ready_url(slot)
        path = self.plan.rundir.log_for(slot.label)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.plan.ready_timeout
        async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
            while True:
                if process.returncode is not None:
                    raise LauncherError(self._start_failure(child, offset, process.returncode))
                if await self._is_ready(client, url, path, offset):
                    break
                if loop.time() > deadline:
                    await self._stop([child])
                    raise LauncherError(
                        f"{slot.label} was not ready after {self.plan.ready_timeout:g}s; "
                        f"stopped it. Last lines of {path}:\n{tail(path, offset)}"
                    )
                await asyncio.sleep(POLL_INTERVAL)
        if child.process is process and process.returncode is None:
            child.state = "running"
            child.became_ready = True
            self._notify(f"{slot.label} is ready")
            self._changed()

    @staticmethod
    async def _is_ready(client: httpx.AsyncClient, url: str | None, path: Any, offset: int) -> bool:
        if url is None:
            return config.READY_MARKER in tail(path, offset, lines=10_000)
        try:
            return (await client.get(url)).status_code == 200
        except httpx.HTTPError:
            return False

    def _start_failure(self, child: Child, offset: int, code: int) -> str:
        slot = child.slot
        path = self.plan.rundir.log_for(slot.label)
        lines = tail(path, offset) or "(no output)"
        message = f"{slot.label} {describe_exit(code)} at start. Last lines of {path}:\n{lines}"
        hints = {
            topology.SERVER: (self.plan.server_port, "--server-port", "the server"),
            topology.GATEWAY: (self.plan.gateway_port, "--gateway-port", "the gateway"),
        }
        if slot.node in hints:
            port, option, what = hints[slot.node]
            if ports.port_in_use(self.plan.host, port):
                message += "\n" + ports.in_use_message(what, self.plan.host, port, option)
        return message

    async def _start_children(self, children: Iterable[Child]) -> None:
        """Spawn in order, then wait for all to be ready; raise with every failure."""
        spawned = []
        for child in children:
            if child.respawner is not None and child.respawner is not asyncio.current_task():
                child.respawner.cancel()
            spawned.append((child, *await self._spawn(child)))
        results = await asyncio.gather(
            *(self._wait_ready(child, process, offset) for child, process, offset in spawned),
            return_exceptions=True,
        )
        errors = [result for result in results if isinstance(result, BaseException)]
        for error in errors:
            if not isinstance(error, LauncherError):
                raise error
        if errors:
            raise LauncherError("\n\n".join(str(error) for error in errors))

    async def _wait_exit(self, children: list[Child], timeout: float) -> bool:
        watchers = [c.watcher for c in children if c.watcher is not None and not c.watcher.done()]
        if not watchers:
            return True
        _, pending = await asyncio.wait(watchers, timeout=timeout)
        return not pending

    async def _stop(self, children: list[Child], grace: float = STOP_GRACE) -> None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL what is left."""
        for child in children:
            if child.respawner is not None:
                child.respawner.cancel()
            child.stopping = True
            if child.alive and child.ref is not None:
                child.ref.signal(signal.SIGTERM)
        if await self._wait_exit(children, grace):
            return
        for child in children:
            if child.alive and child.ref is not None:
                self._notify(f"{child.label} did not stop within {grace:g}s: killing it")
                child.ref.signal(signal.SIGKILL)
        await self._wait_exit(children, 10.0)

    # -- operations (what the control API offers) --------------------------------

    async def boot(self) -> None:
        """Start the plan: the server first, then the gateway and the nodes.

        On any failure everything started is stopped again and the error raised.
        """
        try:
            servers = [c for c in self.children.values() if c.slot.node == topology.SERVER]
            others = [c for c in self.children.values() if c.slot.node != topology.SERVER]
            if servers:
                await self._start_children(servers)
            if others:
                await self._start_children(others)
        except BaseException as error:
            self.error = str(error) if isinstance(error, LauncherError) else None
            await asyncio.shield(self.stop_all())
            raise
        self.phase = "ready"
        self._changed()

    async def start(
        self, selector: Selector, delay: float | None = None, add: bool = False
    ) -> dict[str, list[str]]:
        """Start the matching slots that are not running (`add`: one more replica)."""
        if self._closing:
            raise LauncherError("the launcher is stopping; start it again with `asyncrpc up`.")
        self._check_server_is_ours(selector)
        node = selector.node
        if add:
            if node not in topology.NODES:
                raise UsageError(f"only worker nodes can have more replicas, not {node}.")
            replicas = [c.slot.replica for c in self.children.values() if c.slot.node == node]
            candidates = [self._child(Slot(node, max(replicas, default=0) + 1))]
        elif selector.replica is not None:
            candidates = [self._child(Slot(node, selector.replica))]
        else:
            candidates = [c for c in self.children.values() if c.slot.node == node]
            candidates = candidates or [self._child(Slot(node))]
        todo = [c for c in candidates if not c.running]
        if delay is not None:
            for child in todo:
                child.delay = delay
        self._changed()
        if todo:
            await self._start_children(todo)
        return {
            "started": [c.label for c in todo],
            "already_running": [c.label for c in candidates if c not in todo],
        }

    async def kill(self, selector: Selector, sig: int = signal.SIGKILL) -> list[str]:
        """Signal every running match (a crash, by default) and wait until it has exited."""
        matching = self._matching(selector)
        running = [c for c in matching if c.running and c.ref is not None]
        if not running:
            states = ", ".join(f"{c.label} {c.state}" for c in matching)
            raise LauncherError(
                f"{selector} is not running ({states}). Start it with `asyncrpc start {selector}`."
            )
        for child in running:
            child.signalled = sig
            assert child.ref is not None
            child.ref.signal(sig)
        wait = 10.0 if sig == signal.SIGKILL else STOP_GRACE * 2
        await self._wait_exit(running, wait)
        still = [c.label for c in running if c.alive]
        if still:
            raise LauncherError(
                f"{', '.join(still)} still running {wait:g}s after {signal.Signals(sig).name}; "
                f"`asyncrpc kill {selector} --signal KILL` forces it."
            )
        return [c.label for c in running]

    async def restart(self, selector: Selector) -> list[str]:
        """Stop the matches (SIGTERM) and start replacements; the rest keeps running."""
        matching = self._matching(selector)
        await self._stop([c for c in matching if c.alive])
        await self._start_children(matching)
        return [c.label for c in matching]

    async def stop_all(self) -> list[str]:
        """Stop everything, nodes first, the server last. Safe to call more than once."""
        if not self._closing and any(child.alive for child in self.children.values()):
            self._notify("stopping everything")
        self._closing = True
        self.phase = "stopping"
        for child in self.children.values():
            if child.respawner is not None:
                child.respawner.cancel()
        stopped: list[str] = []
        tiers = (
            [c for c in self.children.values() if c.slot.is_worker],
            [c for c in self.children.values() if c.slot.node == topology.GATEWAY],
            [c for c in self.children.values() if c.slot.node == topology.SERVER],
        )
        for tier in tiers:
            alive = [c for c in tier if c.alive]
            if alive:
                await self._stop(alive)
                stopped += [c.label for c in alive]
        self._changed()
        return stopped

    # -- views -------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything `asyncrpc status --json` shows."""
        now = self._clock()
        return {
            "phase": self.phase,
            "error": self.error,
            "run_dir": str(self.plan.run_dir),
            "server_url": self.plan.server_url,
            "server_embedded": self.plan.embedded_server,
            "gateway_url": self.plan.gateway_url
            if any(c.slot.node == topology.GATEWAY for c in self.children.values())
            else None,
            "respawn": self.plan.respawn,
            "nodes": [self._describe(child, now) for child in self.children.values()],
        }

    def _describe(self, child: Child, now: float) -> dict[str, Any]:
        running = child.running and child.started_at is not None
        return {
            "name": child.label,
            "node": child.slot.node,
            "replica": child.slot.replica,
            "group": child.slot.group,
            "id": child.node_id,
            "pid": child.ref.pid if child.ref else None,
            "pid_started": child.ref.started if child.ref else None,
            "state": child.state,
            "uptime": round(now - child.started_at, 3) if running else None,
            "restarts": child.restarts,
            "exit_code": child.exit_code,
            "delay": child.delay,
            "log": str(self.plan.rundir.log_for(child.label)),
        }
