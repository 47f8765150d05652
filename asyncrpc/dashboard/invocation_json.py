"""The invocations the dashboard lists, and the call graph it draws, as JSON for the page.

Both are read with :class:`~asyncrpc.readers.server_reader.AsyncServerReader`:
an invocation is a root promise (one whose origin tag names itself) sent to a
flow's entry group, whoever started it (the page, `asyncrpc call`, curl); one
``promise.search`` per flow by that target finds them, asking for the newest
few only, so that a read costs the same with ten invocations stored or a
hundred thousand. The detached chain's entry returns its first detached step's
id; the chain's result is its last step's value, found as `asyncrpc invoke`
finds it (:func:`asyncrpc.ops.call.last_step`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from resonate.connections.sse import resolve_target

from asyncrpc.lesson import topology
from asyncrpc.ops.call import last_step
from asyncrpc.protocol.call_graph import CallKind, CallNode
from asyncrpc.protocol.records import PromiseRecord
from asyncrpc.protocol.tags import ORIGIN_TAG, TARGET_TAG
from asyncrpc.readers.server_reader import AsyncServerReader

#: How many invocations the page lists, newest first.
RECENT = 25


@dataclass(frozen=True)
class InvocationSummary:
    """One invocation as the page lists it."""

    id: str
    flow: str
    state: str
    result: Any
    error: str | None
    created_at: int
    settled_at: int | None

    @classmethod
    def of(cls, flow: topology.Flow, record: PromiseRecord) -> InvocationSummary:
        return cls(
            id=record.id,
            flow=flow.name,
            state=str(record.state),
            result=record.value if record.error is None else None,
            error=record.error,
            created_at=record.created_at,
            settled_at=record.settled_at,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "flow": self.flow,
            "state": self.state,
            "result": self.result,
            "error": self.error,
            "created_at": self.created_at,
            "settled_at": self.settled_at,
        }


async def recent_invocations(
    reader: AsyncServerReader, limit: int = RECENT
) -> list[InvocationSummary]:
    """The newest ``limit`` invocations of every flow, newest first.

    Reads at most ``limit`` promises per flow: a flow's entry group is sent its
    roots only (every step of a flow goes to another group).
    """
    found: list[InvocationSummary] = []
    for flow in topology.FLOWS.values():
        target = resolve_target(flow.entry_group)
        for record in await reader.search(tags={TARGET_TAG: target}, newest=limit):
            if record.tags.get(ORIGIN_TAG) == record.id and record.function == flow.entry_function:
                found.append(InvocationSummary.of(flow, record))
    found.sort(key=lambda summary: (summary.created_at, summary.id), reverse=True)
    return [await chain_result(reader, summary) for summary in found[:limit]]


async def chain_result(reader: AsyncServerReader, summary: InvocationSummary) -> InvocationSummary:
    """``summary`` with its flow's result: for a detached chain, its last step's outcome.

    Until that step settles the chain is still running, so it reads as pending.
    """
    flow = topology.FLOWS[summary.flow]
    if flow.waits_for_result or summary.state != "resolved":
        return summary
    step = last_step(flow, await reader.search(tags={ORIGIN_TAG: summary.id}))
    if step is None or not step.settled:
        return replace(summary, state="pending", result=None, settled_at=None)
    return replace(
        summary,
        state=str(step.state),
        result=step.value if step.error is None else None,
        error=step.error,
        settled_at=step.settled_at,
    )


async def attempts_of(reader: AsyncServerReader, root: CallNode) -> dict[str, int]:
    """How many times each step's task was taken (a retry or a resume adds one), by step id.

    A step without a task (a sleep, a local run) is left out.
    """
    attempts: dict[str, int] = {}
    for node in root.walk():
        if node.group is not None and node.kind is not CallKind.SLEEP:
            task = await reader.task(node.id)
            if task is not None:
                attempts[node.id] = task.version
    return attempts


def graph_json(node: CallNode, attempts: Mapping[str, int] | None = None) -> dict[str, Any]:
    """One step and its children, with what the diagram needs (kind, group, state, times);
    with ``attempts``, how many times each step's task was taken (the timeline's retries)."""
    return {
        "id": node.id,
        "kind": str(node.kind),
        "function": node.function,
        "args": list(node.args),
        "group": node.group,
        "state": str(node.state),
        "value": node.value if node.record.error is None else None,
        "error": node.record.error,
        "created_at": node.created_at,
        "settled_at": node.settled_at,
        "attempts": (attempts or {}).get(node.id),
        "children": [graph_json(child, attempts) for child in node.children],
    }
