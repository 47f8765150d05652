"""An invocation's promises arranged as the tree of calls that made them.

Every promise the SDK creates for an invocation carries the tag
``resonate:origin = <root id>`` and names its caller in ``resonate:parent``,
so one ``promise.search`` by that tag (see
:meth:`~asyncrpc.readers.server_reader.ServerReader.call_graph`) returns the
whole graph, running or finished; :func:`build_tree` arranges it. Rendering is
the views' job (:mod:`asyncrpc.terminal.call_graph_tree`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from asyncrpc.protocol.records import PromiseRecord
from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import PARENT_TAG


class CallKind(enum.StrEnum):
    """What a promise of the graph is."""

    CALL = "call"  # a call of a durable function
    SLEEP = "sleep"  # a durable sleep (a timer promise)
    DETACHED = "detached"  # a call started detached: nobody awaits it
    PROMISE = "promise"  # anything else


@dataclass
class CallNode:
    """One promise of the graph and the promises its function created."""

    record: PromiseRecord
    kind: CallKind
    children: list[CallNode] = field(default_factory=list)

    @classmethod
    def of(cls, record: PromiseRecord) -> CallNode:
        if record.is_sleep:
            kind = CallKind.SLEEP
        elif record.is_detached:
            kind = CallKind.DETACHED
        elif record.function is not None:
            kind = CallKind.CALL
        else:
            kind = CallKind.PROMISE
        return cls(record, kind)

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def function(self) -> str | None:
        return self.record.function

    @property
    def args(self) -> tuple[Any, ...]:
        return self.record.args

    @property
    def group(self) -> str | None:
        return self.record.group

    @property
    def state(self) -> PromiseState:
        return self.record.state

    @property
    def value(self) -> Any:
        return self.record.value

    @property
    def created_at(self) -> int:
        return self.record.created_at

    @property
    def settled_at(self) -> int | None:
        return self.record.settled_at

    @property
    def duration_ms(self) -> int | None:
        return None if self.settled_at is None else self.settled_at - self.created_at

    def walk(self) -> Iterator[CallNode]:
        """This node and every node below it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": str(self.kind),
            "function": self.function,
            "args": list(self.args),
            "group": self.group,
            "state": str(self.state),
            "value": self.value,
            "duration_ms": self.duration_ms,
            "children": [child.to_json() for child in self.children],
        }


def build_tree(root_id: str, records: list[PromiseRecord]) -> CallNode:
    """Arrange promise records into a tree by their ``resonate:parent`` tags.

    The SDK tags every detached start with the root as its parent (its id is
    minted off the root), so who started it is not recorded. A step that
    returned a detached step's id, as this example's detached chain does,
    started it: such a step is moved under the one that returned its id.
    """
    nodes = {record.id: CallNode.of(record) for record in records}
    parents: dict[str, str] = {}
    for record in sorted(records, key=lambda r: (r.created_at, r.id)):
        parent = record.tags.get(PARENT_TAG)
        if record.id != root_id and parent in nodes and parent != record.id:
            parents[record.id] = parent
    starters = {
        node.value: node.id
        for node in nodes.values()
        if isinstance(node.value, str)
        and (started := nodes.get(node.value)) is not None
        and started.kind is CallKind.DETACHED
    }
    for child_id, starter in starters.items():
        if child_id in parents and not _is_ancestor(child_id, starter, parents):
            parents[child_id] = starter
    for child_id, parent in parents.items():
        nodes[parent].children.append(nodes[child_id])
    return nodes[root_id]


def _is_ancestor(candidate: str, node_id: str, parents: dict[str, str]) -> bool:
    """Whether ``candidate`` is ``node_id`` or above it (moving would make a cycle)."""
    seen: set[str] = set()
    while node_id not in seen:
        if node_id == candidate:
            return True
        seen.add(node_id)
        if node_id not in parents:
            return False
        node_id = parents[node_id]
    return False
