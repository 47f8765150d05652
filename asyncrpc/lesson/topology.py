"""The one place that says which flows, nodes, groups and functions exist.

Everything else (the services, the gateway, the supervisor, the docs checks)
reads these tables instead of repeating names. A node is one Resonate worker
process; its group is the anycast address other processes target; the
function is the durable function it registers.
"""

from __future__ import annotations

from dataclasses import dataclass

SERVER = "server"
#: A local Postgres with resonate.sql: the server as a database (`up --server postgres`).
POSTGRES = "postgres"
#: The nodes a supervisor may run as the server; one system runs at most one of them.
SERVER_NODES: tuple[str, ...] = (SERVER, POSTGRES)
GATEWAY = "gateway"
GATEWAY_GROUP = "gateway"

# The groups: the targets :mod:`asyncrpc.lesson.services` sends its calls to.
SERVICE_A = "service-a"
SERVICE_B = "service-b"
SERVICE_C = "service-c"
SERVICE_D = "service-d"
SERVICE_E = "service-e"
SERVICE_F = "service-f"
SERVICE_G = "service-g"
SERVICE_H = "service-h"
SERVICE_I = "service-i"


@dataclass(frozen=True)
class Node:
    """A worker process: its short name, its group, the function it serves."""

    name: str
    group: str
    function: str
    flow: str


@dataclass(frozen=True)
class Flow:
    """A request flow: how the gateway starts it and which nodes it crosses."""

    name: str
    route: str
    entry_function: str
    entry_args: tuple[int, ...]
    nodes: tuple[str, ...]
    default_id: str
    waits_for_result: bool
    expected_result: int
    summary: str
    aliases: tuple[str, ...] = ()

    @property
    def entry_group(self) -> str:
        return NODES[self.nodes[0]].group


NODES: dict[str, Node] = {
    node.name: node
    for node in (
        Node("a", SERVICE_A, "foo", "await-chain"),
        Node("b", SERVICE_B, "bar", "await-chain"),
        Node("c", SERVICE_C, "baz", "await-chain"),
        Node("d", SERVICE_D, "qux", "detached-chain"),
        Node("e", SERVICE_E, "quz", "detached-chain"),
        Node("f", SERVICE_F, "cog", "detached-chain"),
        Node("g", SERVICE_G, "zim", "fan-out"),
        Node("h", SERVICE_H, "rax", "fan-out"),
        Node("i", SERVICE_I, "dop", "fan-out"),
    )
}

FLOWS: dict[str, Flow] = {
    flow.name: flow
    for flow in (
        Flow(
            name="await-chain",
            route="/await-chain",
            entry_function="foo",
            entry_args=(),
            nodes=("a", "b", "c"),
            default_id="await-chain",
            waits_for_result=True,
            expected_result=3,
            summary="foo (a) awaits bar (b) awaits baz (c); each adds 1: the caller gets 3",
        ),
        Flow(
            name="detached-chain",
            route="/detached-chain",
            entry_function="qux",
            entry_args=(1,),
            nodes=("d", "e", "f"),
            default_id="detached-chain",
            waits_for_result=False,
            expected_result=3,
            summary="qux(1) (d) starts quz(2) (e) starts cog(3) (f), nobody waits: cog reports 3",
        ),
        Flow(
            name="fan-out",
            route="/fan-out-workflow",
            entry_function="zim",
            entry_args=(1,),
            nodes=("g", "h", "i"),
            default_id="fan-out-workflow",
            waits_for_result=True,
            expected_result=3,
            summary="zim(1) (g) starts rax (h) and dop (i) at once, awaits both: returns 3",
            aliases=("fan-out-workflow",),
        ),
    )
}

#: Every name `asyncrpc kill/start/logs` accepts, in start order.
PROCESS_NAMES: tuple[str, ...] = (*SERVER_NODES, GATEWAY, *NODES)


def find_flow(name: str) -> Flow | None:
    """Look a flow up by its name or one of its aliases."""
    for flow in FLOWS.values():
        if name == flow.name or name in flow.aliases:
            return flow
    return None


def flow_names() -> list[str]:
    """Every name a flow answers to, canonical names first."""
    return [*FLOWS, *(alias for flow in FLOWS.values() for alias in flow.aliases)]


def node_for_function(function: str) -> Node:
    """The node that registers ``function``."""
    for node in NODES.values():
        if node.function == function:
            return node
    raise KeyError(function)
