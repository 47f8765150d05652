"""The crash demo, scripted: start, call, crash mid-flow, watch the flow wait, replace, finish.

:func:`run_crash_demo` is the whole demo as one plain function. It starts the
system exactly as `asyncrpc up FLOW --delay NODE=SECONDS --detach` would
(:func:`asyncrpc.ops.up.prepare` and :func:`~asyncrpc.ops.up.start_detached`),
then drives it through the control client (`kill`, `start`), calls the flow
with :class:`~asyncrpc.ops.call.FlowCaller` and ends with
:func:`~asyncrpc.ops.down.stop_everything`: the same pieces `asyncrpc
kill`, `start`, `call` and `down` use. Each move waits for
what the server says (the call graph, a task's state), never for a fixed time,
so the crash lands while the chosen step is running.

Seams: the environment mapping, the :class:`~asyncrpc.demo.narrate.Narrator`
(its console), a monotonic clock, a wall clock (to know when a timer is due
while the server is down) and a sleeper. Everything started is stopped in a
``finally``, on success, failure and Ctrl-C alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncrpc.demo.background import BackgroundCall
from asyncrpc.demo.narrate import Narrator
from asyncrpc.demo.observe import (
    DemoFailed,
    ServerView,
    find_step,
    in_its_delay,
    settled,
    sleep_of,
    timer_fired,
    wait_for,
)
from asyncrpc.demo.scenario import Scenario
from asyncrpc.lesson import topology
from asyncrpc.ops import up
from asyncrpc.ops.call import FlowCaller, new_invocation_id
from asyncrpc.ops.down import stop_everything
from asyncrpc.protocol.call_graph import CallNode
from asyncrpc.runtime import config
from asyncrpc.runtime.errors import CommandError, UsageError
from asyncrpc.supervise.control_client import ControlClient, connect
from asyncrpc.supervise.plan import Plan
from asyncrpc.supervise.rundir import RunDir
from asyncrpc.supervise.status import ReplicaStatus

#: Seconds from the call's start until the flow must have recovered.
DEFAULT_TIMEOUT = 120.0
#: How often a call that was cut is re-attached, at most.
MAX_REATTACH = 3
#: Seconds between a cut call and its re-attachment (e.g. while the gateway reconnects).
REATTACH_PAUSE = 0.5
#: Seconds to wait for a sleeping step's task to be released before crashing anyway.
SUSPEND_GRACE = 5.0
#: Seconds the demo lets a sleeping step be seen before the kill (at most a quarter of the
#: delay): a watcher such as the dashboard, which looks every few tenths of a second, then
#: shows the victim running before it shows it killed.
WATCH_BEAT = 0.5


@dataclass
class DemoOptions:
    """What `asyncrpc demo crash` was given (the scenario checked the flow and the node to kill)."""

    scenario: Scenario
    run_dir: Path
    ttl: float | None = None
    timeout: float = DEFAULT_TIMEOUT
    server_url: str | None = None
    server_port: int = config.DEFAULT_SERVER_PORT
    gateway_port: int = config.DEFAULT_GATEWAY_PORT
    ready_timeout: float = 30.0
    #: The server to start (`up --server`); killing the `postgres` node needs `postgres`.
    server: str = up.SERVER_EMBEDDED
    schema: str | None = None


@dataclass
class Outcome:
    invocation_id: str
    result: Any
    recovered: bool


def demo_run_dir(env: Mapping[str, str]) -> Path:
    """The demo's own run directory, `demo/` inside the usual one, so it never meets `up`'s."""
    return config.run_dir(env) / "demo"


def database_of(killed_node: str, rundir: RunDir) -> Path:
    """Where a killed server node keeps what it acknowledged: Postgres's data or server.db."""
    return rundir.postgres_data if killed_node == topology.POSTGRES else rundir.db


def run_crash_demo(
    options: DemoOptions,
    env: Mapping[str, str],
    narrator: Narrator,
    *,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    sleeper: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Run the whole demo; CommandError (UsageError: exit 2) when it cannot or did not work."""
    scenario = options.scenario
    if not options.timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds.")
    narrator.intro()
    rundir = RunDir(options.run_dir)
    plan = _prepare(options, env, rundir, narrator)
    narrator.starting(plan)
    began = clock()
    try:
        snapshot = up.start_detached(plan, env)
        narrator.ready(snapshot, clock() - began)
        run = _CrashRun(
            scenario=scenario,
            plan=plan,
            client=connect(rundir),
            view=ServerView(plan.server_url, env.get(config.ENV_TOKEN)),
            narrator=narrator,
            token=env.get(config.ENV_TOKEN),
            timeout=options.timeout,
            clock=clock,
            wall=wall,
            sleeper=sleeper,
        )
        try:
            return run.run()
        finally:
            run.view.close()
    finally:
        narrator.stopped(stop_everything(rundir).stopped, str(rundir.logs))


def _prepare(
    options: DemoOptions, env: Mapping[str, str], rundir: RunDir, narrator: Narrator
) -> Plan:
    scenario = options.scenario
    choice = up.UpOptions(
        targets=[scenario.flow.name],
        delay=[scenario.delay_option],
        server_url=options.server_url,
        server_port=options.server_port,
        gateway_port=options.gateway_port,
        ttl=options.ttl,
        ready_timeout=options.ready_timeout,
        server=up.SERVER_POSTGRES if scenario.killed_node == topology.POSTGRES else options.server,
        schema=options.schema,
    )
    try:
        plan = up.prepare(choice, env, rundir.path, notify=narrator.note)
    except CommandError as error:
        if rundir.read_state() is not None:
            raise CommandError(
                f"{error} (The demo's run directory is {rundir.path}: give those commands "
                f"--run-dir {rundir.path}.)",
                error.exit_code,
            ) from None
        raise
    killed_node = scenario.killed_node
    if killed_node in topology.SERVER_NODES and killed_node != plan.server_node:
        raise UsageError(
            f"--victim {killed_node}: the demo only kills and restarts a server it started, "
            f"and it would use {config.redacted(plan.server_url)}. Leave out --server-url (and "
            f"unset {config.ENV_SERVER_URL}) to run the embedded server, or --server postgres."
        )
    return plan


@dataclass
class _CrashRun:
    """One staged crash on a running system: the steps of the demo, in order."""

    scenario: Scenario
    plan: Plan
    client: ControlClient
    view: ServerView
    narrator: Narrator
    token: str | None
    timeout: float
    clock: Callable[[], float]
    wall: Callable[[], float]
    sleeper: Callable[[float], None]
    # Set when the call starts:
    id: str = field(init=False, default="")
    caller: FlowCaller = field(init=False)
    call: BackgroundCall = field(init=False)
    deadline: float = field(init=False, default=0.0)

    def run(self) -> Outcome:
        s = self.scenario
        self.id = new_invocation_id(s.flow)
        self.caller = FlowCaller(self.plan.gateway_url, self.plan.server_url, self.token)
        started = self.clock()
        self.deadline = started + self.timeout
        self.call = BackgroundCall(self.caller, s.flow, self.id, self.timeout, self.clock)
        self.call.start()
        self.narrator.calling(self.id, started)

        root = self._graph_until(
            lambda graph: in_its_delay(graph, s.step),
            f"{s.step} to start sleeping on {s.delayed}",
            fail_fast=True,
        )
        self._let_it_suspend(root)
        self.narrator.step_sleeping(root, self.clock())
        self.sleeper(min(WATCH_BEAT, s.delay / 4))

        killed = self._process(s.killed_node)
        self.client.kill(s.killed_node, "KILL")
        database = database_of(s.killed_node, self.plan.rundir)
        self.narrator.killed(killed, self.clock(), str(database))

        redo = self._watch_the_wait(root)
        self.narrator.replacing(self.clock())
        self.client.start(s.killed_node)
        ready = self.clock()
        self.narrator.replacement_ready(self._process(s.killed_node), ready, redo)

        value = self._result()
        final = self._graph_until(settled, "every step of the flow to settle")
        self.narrator.completed(final, value, self.clock())
        recovered = value == s.flow.expected_result
        self.narrator.verdict(recovered, value)
        return Outcome(invocation_id=self.id, result=value, recovered=recovered)

    # -- steps -----------------------------------------------------------------

    def _graph_until(
        self, check: Callable[[CallNode | None], bool], what: str, fail_fast: bool = False
    ) -> CallNode:
        """Poll the call graph until ``check`` holds; ``fail_fast``: stop if the call failed.

        Only before the crash does a failed call mean the demo cannot go on; after
        it, a call cut by the crash is re-attached (see :meth:`_result`).
        """

        def ready() -> CallNode | None:
            graph = self.view.graph(self.id)
            if check(graph):
                return graph
            if fail_fast and self.call.failed:
                raise DemoFailed(f"the call failed while waiting for {what}: {self.call.error}")
            return None

        return wait_for(
            ready, deadline=self.deadline, what=what, clock=self.clock, sleeper=self.sleeper
        )

    def _let_it_suspend(self, root: CallNode) -> None:
        """Crash once the sleeping step has handed its task back (else its lease must expire)."""
        step = find_step(root, self.scenario.step)
        assert step is not None
        limit = min(self.deadline, self.clock() + SUSPEND_GRACE)
        while self.view.task_state(step.id) == "acquired" and self.clock() < limit:
            self.sleeper(0.02)

    def _process(self, node: str) -> ReplicaStatus | None:
        return self.client.status().of_node(node)

    def _watch_the_wait(self, before: CallNode) -> list[CallNode]:
        """Show the flow waiting for the crashed process; returns the step's finished calls."""
        s = self.scenario
        if s.killed_node in topology.SERVER_NODES:
            self._until_timer_due(before)
            return []
        if s.killed_node == topology.GATEWAY:
            root = self._graph_until(settled, "the flow to finish on the nodes")
            self.narrator.finished_without_gateway(root, self.clock())
            return []
        root = self._graph_until(lambda graph: timer_fired(graph, s.step), f"{s.step}'s timer")
        step = find_step(root, s.step)
        assert step is not None
        if step.state != "pending":
            raise DemoFailed(
                f"{s.step} had already finished when {s.killed_node} was killed; "
                "give the demo a longer --delay."
            )
        self.narrator.waiting_for_worker(root, step, self.view.task_state(step.id), self.clock())
        return [
            child for child in step.children if child.kind != "sleep" and child.state == "resolved"
        ]

    def _until_timer_due(self, before: CallNode) -> None:
        """While the server is down: wait until the step's timer is due, then say so."""
        sleep = sleep_of(find_step(before, self.scenario.step))
        assert sleep is not None
        due_wall = sleep.created_at / 1000 + self.scenario.delay
        due = self.clock() + max(0.0, due_wall - self.wall())
        wait_for(
            lambda: self.clock() >= due,
            deadline=self.deadline,
            what="the timer to come due",
            clock=self.clock,
            sleeper=self.sleeper,
        )
        self.narrator.frozen(due, self.view.answers())

    def _result(self) -> Any:
        """The caller's result; a call that was cut is re-attached with the same id."""
        attempts = 0
        while not (self.call.done and self.call.result is not None):
            if self.call.failed:
                if attempts >= MAX_REATTACH or self.clock() > self.deadline:
                    raise DemoFailed(f"the call did not get a result: {self.call.error}")
                attempts += 1
                self.narrator.reattaching(self.call.error or Exception("?"), self.clock())
                self.sleeper(REATTACH_PAUSE)
                remaining = max(1.0, self.deadline - self.clock())
                self.call = BackgroundCall(
                    self.caller, self.scenario.flow, self.id, remaining, self.clock
                ).start()
                continue
            if self.clock() > self.deadline + 5:
                raise DemoFailed(f"no result for invocation {self.id} before the --timeout.")
            self.sleeper(0.05)
        result = self.call.result
        value = result.result if result is not None else None
        self.narrator.result(value, self.call.finished_at or self.clock())
        return value
