"""What a person types, checked against the topology: targets, `NAME=VALUE` options, node names.

`asyncrpc up` takes flows and nodes as targets, `--scale b=2` and `--delay c=10`;
`kill/start/restart/logs` take a node, `b` (every replica) or `b.2` (one replica).
Every name is checked against :mod:`asyncrpc.lesson.topology`; a wrong one raises
:class:`UsageError` saying which names are valid, and which one was probably meant
(:func:`did_you_mean`: `asyncrpc invoke await-chian` is a typo, not a mystery).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from asyncrpc.lesson import topology
from asyncrpc.runtime.errors import UsageError, quoted
from asyncrpc.runtime.numbers import MAX_REPLICAS, REPLICAS, SECONDS, NumberError

#: Worker node names, in topology order.
WORKERS: tuple[str, ...] = tuple(topology.NODES)


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest of the ``valid`` names to ``name``; else ``""``."""
    import difflib  # only a wrong name pays for it

    close = difflib.get_close_matches(name.strip(), list(valid), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_flow(name: str) -> topology.Flow:
    """The flow called ``name`` (or one of its aliases); UsageError naming the valid ones."""
    flow = topology.find_flow(name.strip())
    if flow is None:
        names = topology.flow_names()
        raise UsageError(
            f"unknown flow {quoted(name)}.{did_you_mean(name, names)} "
            f"Valid flows: {', '.join(names)}."
        )
    return flow


def _valid_targets() -> str:
    flows = ", ".join(topology.FLOWS)
    aliases = ", ".join(alias for flow in topology.FLOWS.values() for alias in flow.aliases)
    nodes = ", ".join((topology.GATEWAY, *WORKERS))
    also = f" (also {aliases})" if aliases else ""
    return f"flows {flows}{also}; nodes {nodes}; no target means everything"


def _valid_nodes() -> str:
    return ", ".join(topology.PROCESS_NAMES) + " (add .N for one replica, e.g. b.2)"


@dataclass(frozen=True)
class NodeSelector:
    """A node as typed (`server`, `gateway`, `a`..`i`), maybe narrowed to one replica."""

    node: str
    replica: int | None = None

    def __str__(self) -> str:
        return self.node if self.replica is None else f"{self.node}.{self.replica}"

    def matches(self, node: str, replica: int) -> bool:
        return node == self.node and (self.replica is None or self.replica == replica)


def parse_node_selector(text: str) -> NodeSelector:
    """`b` -> every replica of b, `b.2` -> replica 2; unknown names raise UsageError."""
    name, dot, replica_text = text.strip().partition(".")
    if name not in topology.PROCESS_NAMES:
        hint = did_you_mean(name, topology.PROCESS_NAMES)
        raise UsageError(f"unknown node {quoted(text)}.{hint} Valid nodes: {_valid_nodes()}.")
    if not dot:
        return NodeSelector(name)
    try:
        replica = REPLICAS.read(replica_text)
    except NumberError:
        raise UsageError(
            f"bad replica in {quoted(text)}: write NODE.N with N a whole number from 1 to "
            f"{MAX_REPLICAS}, e.g. {name}.1."
        ) from None
    if name in (*topology.SERVER_NODES, topology.GATEWAY) and replica != 1:
        raise UsageError(f"{name} has a single replica: write {name} (or {name}.1).")
    return NodeSelector(name, replica)


@dataclass(frozen=True)
class Selection:
    """What `up` should run: gateway or not, worker nodes with replica counts and delays."""

    gateway: bool
    workers: tuple[str, ...]
    replicas: dict[str, int] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)

    def replica_count(self, node: str) -> int:
        return self.replicas.get(node, 1)


def _split(values: Iterable[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def resolve_targets(targets: Sequence[str]) -> tuple[bool, tuple[str, ...]]:
    """Flows and node names -> (gateway wanted, worker nodes in topology order).

    No target means everything. A flow brings the gateway and its nodes; a node
    name brings only itself (`server` is accepted: the server always runs).
    """
    names = _split(targets)
    if not names:
        return True, WORKERS
    gateway = False
    wanted: set[str] = set()
    for name in names:
        flow = topology.find_flow(name)
        if flow is not None:
            gateway = True
            wanted.update(flow.nodes)
        elif name == topology.GATEWAY:
            gateway = True
        elif name in topology.NODES:
            wanted.add(name)
        elif name not in topology.SERVER_NODES:
            known = [*topology.flow_names(), topology.GATEWAY, *WORKERS, *topology.SERVER_NODES]
            raise UsageError(
                f"unknown target {quoted(name)}.{did_you_mean(name, known)} "
                f"Valid targets: {_valid_targets()}."
            )
    return gateway, tuple(node for node in WORKERS if node in wanted)


def parse_assignments(values: Iterable[str], option: str) -> dict[str, str]:
    """`["b=2", "c=1,d=3"]` -> {"b": "2", "c": "1", "d": "3"}; the node must be a worker."""
    result: dict[str, str] = {}
    for item in _split(values):
        node, eq, value = item.partition("=")
        node, value = node.strip(), value.strip()
        if not eq or not node or not value:
            raise UsageError(f"{option} {item!r}: write NODE=VALUE, e.g. {option} b=2.")
        if node not in topology.NODES:
            raise UsageError(
                f"{option} {item!r}: unknown node {node!r}.{did_you_mean(node, WORKERS)} "
                f"{option} applies to the worker nodes {', '.join(WORKERS)}."
            )
        result[node] = value
    return result


def parse_scale(values: Iterable[str]) -> dict[str, int]:
    """`--scale b=2`: replicas per node, each a whole number from 1 to MAX_REPLICAS."""
    scale: dict[str, int] = {}
    for node, value in parse_assignments(values, "--scale").items():
        try:
            scale[node] = REPLICAS.read(value, f"--scale {node}")
        except NumberError as error:
            raise UsageError(f"{error}.") from None
    return scale


def parse_delays(values: Iterable[str]) -> dict[str, float]:
    """`--delay c=10`: crash-demo delay in seconds per node, from 0 to MAX_SECONDS."""
    delays: dict[str, float] = {}
    for node, value in parse_assignments(values, "--delay").items():
        try:
            delays[node] = SECONDS.read(value, f"--delay {node}")
        except NumberError as error:
            raise UsageError(f"{error}.") from None
    return delays


def select(
    targets: Sequence[str], scale: Sequence[str] = (), delay: Sequence[str] = ()
) -> Selection:
    """Everything `up` was asked for, checked; raises UsageError on any bad name or value."""
    gateway, workers = resolve_targets(targets)
    replicas = parse_scale(scale)
    delays = parse_delays(delay)
    for option, nodes in (("--scale", replicas), ("--delay", delays)):
        for node in nodes:
            if node not in workers:
                running = ", ".join(workers) or "no worker nodes"
                raise UsageError(
                    f"{option} {node}=...: node {node} is not among the targets "
                    f"({running}); add {node} (or its flow) to the targets."
                )
    return Selection(gateway=gateway, workers=workers, replicas=replicas, delays=delays)
