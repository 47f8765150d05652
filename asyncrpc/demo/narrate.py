"""Everything the crash demo prints: numbered steps, one or two lines of why, trees, a timeline.

Written for someone new to Resonate: each step says what just happened and
why the flow waits or resumes, and names the `asyncrpc` command that does
the same by hand. The script (:mod:`asyncrpc.demo.crash`) decides what
happens; this module only words it. Times are seconds since the call
started; :attr:`Narrator.timeline` keeps them for the closing table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from asyncrpc.demo.observe import finished_calls, path_to
from asyncrpc.demo.scenario import Scenario
from asyncrpc.lesson import topology
from asyncrpc.protocol.call_graph import CallKind, CallNode
from asyncrpc.protocol.states import PromiseState
from asyncrpc.runtime import config
from asyncrpc.supervise.plan import Plan
from asyncrpc.supervise.status import LauncherSnapshot, ReplicaStatus
from asyncrpc.terminal import status_table as view
from asyncrpc.terminal.call_graph_tree import render

INDENT = (0, 0, 0, 3)


def _value(node: CallNode) -> str:
    return json.dumps(node.value)


def _calls(nodes: list[CallNode]) -> str:
    """`baz = 1`; a detached step's value is the id of the step it started, so just `quz`."""
    return ", ".join(
        node.function if isinstance(node.value, str) else f"{node.function} = {_value(node)}"
        for node in nodes
        if node.function
    )


def _who(process: ReplicaStatus | None, name: str) -> str:
    """`b.1 (pid 4318, id b-1-84ac)` from a status entry; just ``name`` without one."""
    if not process:
        return name
    parts = [f"pid {process.pid}"]
    if process.id:
        parts.append(f"id {process.id}")
    return f"{process.name} ({', '.join(parts)})"


@dataclass
class Narrator:
    """Prints the demo on ``console``; ``origin`` is the clock reading when the call started."""

    console: Console
    scenario: Scenario
    origin: float | None = None
    timeline: list[tuple[float, str]] = field(default_factory=list)
    _steps: int = 0

    # -- building blocks -------------------------------------------------------

    def _at(self, moment: float | None) -> str:
        if moment is None or self.origin is None:
            return ""
        return f"+{moment - self.origin:.2f}s"

    def _step(self, title: str, moment: float | None = None, by_hand: str | None = None) -> None:
        self._steps += 1
        at = self._at(moment)
        line = f"\n[bold cyan]{self._steps}.[/] [bold]{title}[/]"
        if at:
            line += f"  [dim]{at}[/]"
        if by_hand:
            line += f"  [dim](by hand: [italic]{escape(by_hand)}[/])[/]"
        self.console.print(line, highlight=False)

    def _say(self, markup: str) -> None:
        """A paragraph, indented under its step and wrapped to the terminal (no trailing blanks)."""
        width = max(20, self.console.width - INDENT[3])
        for line in Text.from_markup(markup).wrap(self.console, width):
            line.rstrip()
            self.console.print(Text(" " * INDENT[3]) + line, highlight=False, soft_wrap=True)

    def _tree(self, root: CallNode | None) -> None:
        if root is not None:
            self.console.print(Padding(render(root), INDENT, expand=False))

    def event(self, moment: float, text: str) -> None:
        self.timeline.append((moment, text))

    def timeline_json(self) -> list[dict[str, Any]]:
        """The timeline for `demo crash --json`: seconds from the call's start, and the event."""
        origin = self.origin or 0.0
        return [
            {"at": round(moment - origin, 3), "event": text}
            for moment, text in sorted(self.timeline, key=lambda item: item[0])
        ]

    def note(self, message: str) -> None:
        """A message from the launcher (e.g. which server it uses)."""
        self._say(f"[dim]{escape(message)}[/]")

    # -- the steps ---------------------------------------------------------------

    def intro(self) -> None:
        s = self.scenario
        flow = s.flow
        self.console.print(
            f"[bold]Crash demo: {flow.name}[/]  [dim]{escape(flow.summary)}[/]", highlight=False
        )
        if s.killed_node_is_worker:
            crashed = f"node {s.killed_node} (group {s.delayed_node.group})"
        elif s.killed_node == topology.GATEWAY:
            crashed = "the gateway"
        else:
            crashed = "the Resonate server itself"
        self._say(
            f"The plan: call the flow, crash {crashed} with kill -9 while [bold]{s.step}[/] "
            f"(on node {s.delayed}) is in the middle of running, watch the flow wait, bring "
            f"up a replacement, and see the flow finish with the same result, "
            f"{flow.expected_result}."
        )

    def starting(self, plan: Plan) -> None:
        s = self.scenario
        nodes = f"the HTTP gateway and nodes {', '.join(s.flow.nodes)}, each its own process"
        if plan.server_node == topology.POSTGRES:
            processes = f"A local Postgres with resonate.sql as the server, {nodes}."
        elif plan.embedded_server:
            processes = f"The embedded Resonate server, {nodes}."
        else:
            server = config.redacted(plan.server_url)
            processes = f"{nodes.capitalize()}, on the Resonate server at {server}."
        self._step(
            f"Starting what {s.flow.name} needs",
            by_hand=f"asyncrpc up {s.flow.name} --delay {s.delay_option} --detach",
        )
        self._say(
            f"{processes} On node {s.delayed}, [bold]{s.step}[/] sleeps durably for "
            f"{s.delay:g}s before it returns: a timer promise on the server, nothing held in "
            "memory. That pause is the window for the crash."
        )

    def ready(self, snapshot: LauncherSnapshot, seconds: float) -> None:
        self.console.print(Padding(view.status_table(snapshot), INDENT, expand=False))
        run_dir = escape(snapshot.run_dir)
        self._say(
            f"[green]ready[/] in {seconds:.1f}s: server {snapshot.server_url}, "
            f"gateway {snapshot.gateway_url}. From another terminal, add "
            f"[italic]--run-dir {run_dir}[/] to asyncrpc status, logs, kill or start "
            "to reach these processes."
        )

    def calling(self, invocation_id: str, moment: float) -> None:
        s = self.scenario
        self.origin = moment
        self.event(moment, f"call started: invocation {invocation_id}")
        self._step(
            f"Calling {s.flow.name} as invocation [bold]{escape(invocation_id)}[/]",
            moment,
            by_hand=f"asyncrpc call {s.flow.name} --id {invocation_id}",
        )
        self._say(
            "The gateway turns the HTTP request into a durable promise under this id. From "
            "there every step is a promise on the server, sent to a group (any process of "
            f"{s.flow.entry_group}, for the first step), not to one particular process."
        )

    def step_sleeping(self, root: CallNode, moment: float) -> None:
        s = self.scenario
        self.event(moment, f"{s.step} sleeping durably on {s.delayed}")
        self._step(f"{s.step} is running on node {s.delayed}, sleeping durably", moment)
        self._tree(root)

    def killed(self, process: ReplicaStatus | None, moment: float, db: str) -> None:
        s = self.scenario
        self.event(moment, f"{s.killed_node} killed (kill -9)")
        self._step(f"kill -9 {s.killed_node}", moment, by_hand=f"asyncrpc kill {s.killed_node}")
        gone = f"{_who(process, s.killed_node)} is gone, with no chance to clean up."
        if s.killed_node_is_worker:
            self._say(
                f"{gone} Nothing that matters was in it: {s.step}'s promise and its timer "
                "live on the server, not in the process."
            )
        elif s.killed_node == topology.GATEWAY:
            self._say(
                f"{gone} The gateway only turned the HTTP request into a durable "
                "invocation; the flow runs on the nodes and does not need it. The caller's "
                "connection is cut, so it keeps asking for the same invocation id."
            )
        else:
            self._say(
                f"{gone} Everything it acknowledged (each promise, task and timer) is in its "
                f"database, {escape(db)}. The gateway and the nodes lose their connections "
                "and keep trying to reconnect."
            )

    def waiting_for_worker(
        self, root: CallNode, step: CallNode, task: str | None, moment: float
    ) -> None:
        s = self.scenario
        group = s.delayed_node.group
        self.event(moment, f"{s.step}'s timer fired: waiting for a {group} process")
        self._step("The flow waits", moment)
        state = f" (its task is [yellow]{task}[/] on the server)" if task else ""
        lines = [
            f"{s.step}'s timer fired, but no process of group {group} is alive to resume "
            f"{s.step}{state}. Nothing retries in a loop and nothing times out: the work "
            "simply waits for a process of that group to ask for it."
        ]
        callers = [node for node in path_to(root, step)[:-1] if node.state is PromiseState.PENDING]
        if callers:
            waiting = ", ".join(
                f"{node.function} (node {topology.node_for_function(node.function).name})"
                for node in callers
                if node.function
            )
            lines.append(f"{waiting} waits for it; its task is suspended: it ties up no process.")
        elif step is root and s.flow.waits_for_result:
            lines.append(f"The caller waits for {s.step}'s result through the gateway.")
        elif step is root:
            lines.append(
                f"Nobody waits for {s.step}: the gateway answered as soon as the invocation was "
                f"durable. Still the server keeps {s.step}'s promise until it is done."
            )
        else:
            lines.append(
                f"Nobody waits for {s.step}: each earlier step started the next one detached "
                f"and returned. Still the server keeps {s.step}'s promise until it is done."
            )
        kept = finished_calls(root, skip=step)
        if kept:
            lines.append(f"Already finished and kept on the server: {_calls(kept)}.")
        self._say(" ".join(lines))
        self._tree(root)

    def finished_without_gateway(self, root: CallNode, moment: float) -> None:
        self.event(moment, "the flow finished with no gateway running")
        self._step("The flow finishes with no gateway at all", moment)
        self._say(
            "Every step settled while the gateway was down; the outcome is stored on the "
            "server, waiting for anyone to ask for this invocation id."
        )
        self._tree(root)

    def frozen(self, due: float, server_answers: bool) -> None:
        s = self.scenario
        self.event(due, f"{s.step}'s timer due while the server is down")
        self._step("The flow is frozen", due)
        silent = "still answers?!" if server_answers else "does not answer"
        self._say(
            f"{s.step}'s timer came due while the server was down (the server {silent}). "
            "Nobody can fire it and no step can move, but nothing is lost: the timer is a "
            "row in the server's database."
        )

    def replacing(self, moment: float) -> None:
        node = self.scenario.killed_node
        what = f"{node} again" if node in topology.SERVER_NODES else f"a new {node}"
        self.event(moment, f"starting {what}")

    def replacement_ready(
        self, process: ReplicaStatus | None, moment: float, redo: list[CallNode]
    ) -> None:
        s = self.scenario
        node = s.killed_node
        who = _who(process, node)
        if node in topology.SERVER_NODES:
            self.event(moment, f"{node} restarted on its database: ready")
            what = "the server" if node == topology.SERVER else "Postgres"
            self._step(f"Restarting {what} on its database", moment, f"asyncrpc start {node}")
            self._say(
                f"{who} is ready. The gateway and the nodes reconnect by themselves, "
                f"the overdue timer fires, and {s.step} resumes on node {s.delayed}, which never "
                "crashed."
            )
            return
        self.event(moment, f"replacement {node} ready")
        self._step(f"Starting a replacement {node}", moment, by_hand=f"asyncrpc start {node}")
        if s.killed_node == topology.GATEWAY:
            self._say(
                f"{who} is ready: a new process. The caller re-attaches to the "
                "invocation by its id: the same id is the same durable promise, so nothing "
                "runs again."
            )
            return
        calls = [node for node in redo if node.kind is CallKind.CALL]
        if calls:
            reuse = (
                f"its calls that finished ({_calls(calls)}) return their stored results "
                "instead of running again,"
            )
        elif redo:
            reuse = "the step it already started detached is not started again,"
        else:
            reuse = "it has no remote calls to repeat,"
        self._say(
            f"{who} is ready: a new process with a new unique id in the same group, "
            f"{s.delayed_node.group}. The server hands it {s.step}'s waiting task. Resonate "
            f"resumes a function by running it again from the top: {reuse} and the durable "
            f"sleep is already over, so {s.step} returns at once."
        )

    def reattaching(self, error: Exception, moment: float) -> None:
        self.event(moment, "caller re-attached with the same invocation id")
        self._say(
            f"[yellow]The call was cut[/] ({escape(str(error))}). Asking again with the same "
            "invocation id re-attaches to the same durable invocation."
        )

    def result(self, value: Any, moment: float) -> None:
        flow = self.scenario.flow
        last = topology.NODES[flow.nodes[-1]].function
        what = "" if flow.waits_for_result else f"{last}'s "
        self.event(moment, f"caller received {what}result {json.dumps(value)}")

    def completed(self, root: CallNode, value: Any, moment: float) -> None:
        self.event(moment, "completed: every step settled")
        self._step(f"Completed: result {json.dumps(value)}", moment)
        self._tree(root)

    def verdict(self, recovered: bool, value: Any) -> None:
        s = self.scenario
        table = Table(title="Timeline (from the call's start)", show_header=False, box=None)
        table.add_column(justify="right", style="dim")
        table.add_column()
        for moment, text in sorted(self.timeline, key=lambda item: item[0]):
            table.add_row(self._at(moment), text)
        self.console.print()
        self.console.print(Padding(table, INDENT, expand=False))
        expected = s.flow.expected_result
        who = s.killed_node if s.killed_node_is_worker else f"the {s.killed_node}"
        crash = f"after {who} was killed mid-flow"
        if recovered:
            self.console.print(
                f"\n[bold green]Recovered:[/] {s.flow.name} returned {json.dumps(value)} "
                f"{crash}, the same result as without a crash.",
                highlight=False,
            )
        else:
            self.console.print(
                f"\n[bold red]Not recovered:[/] {s.flow.name} returned {json.dumps(value)} "
                f"{crash}; expected {expected}.",
                highlight=False,
            )

    def stopped(self, names: list[str], logs: str) -> None:
        if names:
            self.console.print(
                f"Stopped everything the demo started ({', '.join(names)}). Logs: {escape(logs)}",
                highlight=False,
            )
