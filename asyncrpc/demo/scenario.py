"""Which crash the demo stages: the flow, the node it kills, and the step that sleeps.

Everything a person can type is checked here against :mod:`asyncrpc.lesson.topology`,
so a wrong name fails with a :class:`UsageError` naming what is valid before
anything starts.

The delay (a durable ``ctx.sleep`` after a step's remote calls, before it
returns) goes on the killed node's own step when that node is a worker node: it
is then killed while its step is in the middle of running. When the demo kills
the server or the gateway, the delay goes on the step of the node the flow
kills by default, so the crash lands while that step runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from asyncrpc.lesson import topology
from asyncrpc.runtime.errors import UsageError
from asyncrpc.supervise.targets import check_flow, did_you_mean

#: Shortest delay that leaves time to kill a step mid-flow.
MIN_DELAY = 1.0


def default_killed_node(flow: topology.Flow) -> str:
    """The node killed when no ``--victim`` is given: the one whose step runs during the delay.

    - A flow whose caller waits for the result (the await chain, the fan-out):
      its second node. In the await chain that is the middle of the chain (b,
      running bar): below it a call that has already finished (baz), above it
      a caller waiting for it (foo), so the demo shows both a result being
      re-used and a caller waiting. In the fan-out it is the first branch (h,
      running rax): the workflow (zim) waits on the crashed branch while the
      other branch's result (dop) is kept.
    - A detached chain: its last node (f, running cog). Every earlier step
      starts the next one before it would sleep, so crashing an earlier step
      cannot stop the chain; the last step is the one whose result is the
      chain's result, and nobody waits for it, which is the point to show.
    """
    return flow.nodes[1] if flow.waits_for_result else flow.nodes[-1]


@dataclass(frozen=True)
class Scenario:
    """A checked choice: ``killed_node`` is a worker node of the flow, the gateway or the server."""

    flow: topology.Flow
    killed_node: str
    delayed: str
    delay: float

    @property
    def killed_node_is_worker(self) -> bool:
        return self.killed_node in topology.NODES

    @property
    def delayed_node(self) -> topology.Node:
        return topology.NODES[self.delayed]

    @property
    def step(self) -> str:
        """The function that sleeps durably (and is running when the crash happens)."""
        return self.delayed_node.function

    @property
    def delay_option(self) -> str:
        """The `up --delay` value, e.g. `b=5`."""
        return f"{self.delayed}={self.delay:g}"


def killable_nodes(flow: topology.Flow) -> list[str]:
    return [*topology.SERVER_NODES, topology.GATEWAY, *flow.nodes]


def choose(flow_name: str, killed_node: str | None, delay: float) -> Scenario:
    """Check the demo's options; UsageError (exit 2) says what is valid."""
    flow = check_flow(flow_name)
    if not delay >= MIN_DELAY or delay == float("inf"):
        raise UsageError(
            f"--delay {delay:g}: give at least {MIN_DELAY:g} second(s), "
            "the time the demo has to crash a step mid-flow."
        )
    chosen = killed_node.strip() if killed_node is not None else default_killed_node(flow)
    valid = ", ".join(killable_nodes(flow))
    if chosen not in topology.PROCESS_NAMES:
        hint = did_you_mean(chosen, killable_nodes(flow))
        raise UsageError(
            f"unknown node to kill {chosen!r}.{hint} The nodes {flow.name} can lose: {valid}."
        )
    if chosen in topology.NODES and chosen not in flow.nodes:
        other = topology.NODES[chosen]
        raise UsageError(
            f"{chosen} is not part of {flow.name}: it runs {other.function} in {other.flow}. "
            f"{flow.name} runs on {', '.join(flow.nodes)}; the nodes it can lose: {valid}."
        )
    delayed = chosen if chosen in topology.NODES else default_killed_node(flow)
    return Scenario(flow=flow, killed_node=chosen, delayed=delayed, delay=delay)
