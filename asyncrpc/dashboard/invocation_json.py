"""The invocations the dashboard lists, and the call graph it draws, as JSON for the page.

Both are read with :class:`~asyncrpc.readers.server_reader.AsyncServerReader`:
an invocation is a root promise (one whose origin tag names itself) sent to a
flow's entry group, whoever started it (the page, `asyncrpc call`, curl); one
``promise.search`` per flow by that target finds them, asking for the newest
few only, so that a read costs the same with ten invocations stored or a
hundred thousand. The detached chain's entry returns its first detached step's
id; the chain's result is its last step's value, found as `asyncrpc invoke`
finds it (:func:`asyncrpc.ops.call.last_step`).

The timeline says how often each step's task was taken and why, as far as the server
can tell (:func:`label_attempts`): a *resume* (the promises it awaited settled), a
*takeover* (its holder's lease ran out: the replica died or hung), a run after a
*release*. The embedded server records each acquisition (``task.acquisitions``: who,
when, why); resonate-pg keeps only the count (the task's version), and the label then
says just that. A *retry* (the SDK running a function that raised again, by its retry
policy) happens inside one acquisition in one replica: no server sees it, and nothing
here calls an acquisition a retry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from resonate.connections.sse import resolve_target

from asyncrpc.lesson import topology
from asyncrpc.ops.call import last_step
from asyncrpc.protocol.call_graph import CallKind, CallNode
from asyncrpc.protocol.records import AcquireCause, PromiseRecord, TaskAcquisition
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


#: What the timeline tells about retries, whichever server it reads.
RETRIES_UNSEEN = (
    "the SDK's retries of a function that raised run inside one acquisition, in one "
    "replica: no server sees them"
)


@dataclass(frozen=True)
class AttemptLabel:
    """How often a step's task was taken and why, in the words the timeline shows.

    ``known`` says how much the server recorded: ``all`` its acquisitions, ``part`` of
    them (the first and the latest), or ``none`` (only their count, the task's version).
    ``marks`` are the recorded acquisitions after the first, for the timeline to draw
    at their times.
    """

    acquired: int
    known: str
    resumes: int = 0
    takeovers: int = 0
    releases: int = 0
    #: ``(from, to)`` process ids of each acquisition by another replica than the last.
    moves: tuple[tuple[str, str], ...] = ()
    summary: str = ""
    detail: str = ""
    marks: tuple[TaskAcquisition, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "acquired": self.acquired,
            "known": self.known,
            "resumes": self.resumes,
            "takeovers": self.takeovers,
            "releases": self.releases,
            "moves": [list(move) for move in self.moves],
            "summary": self.summary,
            "detail": self.detail,
            "marks": [
                {**mark.to_json(), "moved": mark.previous not in (None, mark.pid)}
                for mark in self.marks
            ],
        }


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def label_attempts(
    acquired: int, acquisitions: Sequence[TaskAcquisition] | None, start: int
) -> AttemptLabel:
    """The timeline's words for a task acquired ``acquired`` times (its version).

    ``acquisitions`` is the server's record (None: it keeps none); ``start`` (ms) is the
    invocation's start, which the detail measures each acquisition from.
    """
    if not acquisitions:
        if acquired <= 1:
            return AttemptLabel(acquired, "none", detail=RETRIES_UNSEEN)
        return AttemptLabel(
            acquired,
            "none",
            summary=f"acquired {acquired} times",
            detail=(
                f"its task was acquired {acquired} times; this server records no reason, so "
                "resumes after awaiting and takeovers after a lost lease look alike here; "
                + RETRIES_UNSEEN
            ),
        )
    later = tuple(a for a in acquisitions if a.version > 1)
    causes = Counter(a.cause for a in later)
    moves = tuple(
        (a.previous, a.pid) for a in later if a.previous is not None and a.previous != a.pid
    )
    summary: list[str] = []
    if causes[AcquireCause.AWAITED]:
        summary.append(f"resumed {_times(causes[AcquireCause.AWAITED])}")
    takeovers = [a for a in later if a.cause is AcquireCause.LEASE]
    if takeovers:
        last = takeovers[-1]
        holder = last.previous or "its holder"
        summary.append(
            f"taken over by {last.pid} after {holder}'s lease ran out"
            if len(takeovers) == 1
            else f"taken over {len(takeovers)} times (last by {last.pid})"
        )
    if causes[AcquireCause.RELEASE]:
        summary.append(f"run again {_times(causes[AcquireCause.RELEASE])} after a release")
    if causes[AcquireCause.CONTINUE]:
        summary.append(f"continued {_times(causes[AcquireCause.CONTINUE])} after a halt")
    if causes[AcquireCause.UNKNOWN]:
        summary.append(f"acquired {_times(causes[AcquireCause.UNKNOWN])} for no recorded reason")
    moved_resumes = [
        (a.previous, a.pid)
        for a in later
        if a.cause is AcquireCause.AWAITED and a.previous is not None and a.previous != a.pid
    ]
    if moved_resumes:
        before, after = moved_resumes[-1]
        summary.append(f"resumed on {after}, not {before}")
    known = "all" if len(acquisitions) >= acquired else "part"
    lines = [_acquisition_words(a, start) for a in acquisitions]
    if known == "part":
        lines.insert(
            1,
            f"(of its {acquired} acquisitions the server recorded these {len(acquisitions)}: "
            "it keeps the first and the latest, in memory, since it started)",
        )
    return AttemptLabel(
        acquired=acquired,
        known=known,
        resumes=causes[AcquireCause.AWAITED],
        takeovers=len(takeovers),
        releases=causes[AcquireCause.RELEASE],
        moves=moves,
        summary=" · ".join(summary),
        detail="; ".join([*lines, RETRIES_UNSEEN]),
        marks=later,
    )


def _acquisition_words(acquisition: TaskAcquisition, start: int) -> str:
    """One acquisition in words: who took it, when, and why it was there to take."""
    at = f"+{max(0, acquisition.at - start) / 1000:.2f}s"
    who, before = acquisition.pid, acquisition.previous
    match acquisition.cause:
        case AcquireCause.FIRST:
            return f"taken by {who} at {at}"
        case AcquireCause.AWAITED:
            where = f"on {who}" if before in (None, who) else f"on {who} (it ran on {before})"
            return f"resumed {where} at {at}, what it awaited settled"
        case AcquireCause.LEASE:
            return f"taken over by {who} at {at}: {before or 'its holder'}'s lease ran out"
        case AcquireCause.RELEASE:
            return f"taken by {who} at {at} after {before or 'its holder'} released it"
        case AcquireCause.CONTINUE:
            return f"taken by {who} at {at}, continued after a halt"
        case _:
            return f"taken by {who} at {at} (the server did not see why)"


async def attempts_of(reader: AsyncServerReader, root: CallNode) -> dict[str, AttemptLabel]:
    """How often each step's task was taken and why (:func:`label_attempts`), by step id.

    A step without a task (a sleep, a local run) is left out.
    """
    attempts: dict[str, AttemptLabel] = {}
    for node in root.walk():
        if node.group is not None and node.kind is not CallKind.SLEEP:
            task = await reader.task(node.id)
            if task is not None:
                record = await reader.acquisitions(node.id) if task.version > 1 else None
                attempts[node.id] = label_attempts(task.version, record, root.created_at)
    return attempts


def graph_json(
    node: CallNode, attempts: Mapping[str, AttemptLabel] | None = None
) -> dict[str, Any]:
    """One step and its children, with what the diagram needs (kind, group, state, times);
    with ``attempts``, how often each step's task was taken and why (the timeline's)."""
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
        "attempts": label.to_json() if (label := (attempts or {}).get(node.id)) else None,
        "children": [graph_json(child, attempts) for child in node.children],
    }
