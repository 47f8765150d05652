"""What the page's promise browser, detail panel and overview show, as JSON.

Everything is read with :class:`~asyncrpc.readers.server_reader.AsyncServerReader`
and the searches of :mod:`asyncrpc.readers.promises`, so the embedded server and
resonate-pg answer alike; the replicas come from the supervisor's snapshot, which
is how a pending step's task is tied to the process that holds it (the task's
``pid`` is the replica's Resonate id).

- :func:`promise_page`: one page of a search (pattern, state, role, cursor), newest first.
- :func:`promise_detail`: one promise decoded, its task, and for a pending one why it
  waits (:class:`Wait`).
- :func:`overview`: counts by state, invocations per second, the recent errors, and the
  schedules (:mod:`asyncrpc.ops.schedules`, the read `asyncrpc schedules` makes).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from asyncrpc.ops.schedules import list_schedules_async
from asyncrpc.protocol.call_graph import CallKind, CallNode
from asyncrpc.protocol.errors import ServerRefused, UnknownInvocation
from asyncrpc.protocol.records import PromiseRecord, ScheduleRecord, TaskRecord
from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import ORIGIN_TAG, PARENT_TAG
from asyncrpc.readers.promises import PromiseQuery, Role, role_of, search_promises_async
from asyncrpc.readers.server_reader import AsyncServerReader
from asyncrpc.supervise.status import ReplicaState, ReplicaStatus

#: Seconds of history the overview's invocation rate covers, and the width of one bar.
RATE_WINDOW = 300
RATE_BUCKET = 10
#: Rejected promises the overview lists, newest first.
RECENT_ERRORS = 8


def promise_json(record: PromiseRecord) -> dict[str, Any]:
    """A promise as every part of the page shows it: decoded, with its role and kind."""
    return {
        **record.to_json(),
        "role": str(role_of(record)),
        "kind": str(CallNode.of(record).kind),
        "invocation": record.tags.get(ORIGIN_TAG),
        "parent": record.tags.get(PARENT_TAG),
    }


async def promise_page(reader: AsyncServerReader, query: PromiseQuery) -> dict[str, Any]:
    """One page of ``query``'s promises, newest first, and the cursor of the next page."""
    page = await search_promises_async(reader, query)
    return {
        "promises": [promise_json(record) for record in page.promises],
        "matched": page.matched,
        "cursor": page.cursor,
    }


class WaitKind(enum.StrEnum):
    """Why a pending promise is not settled yet."""

    SLEEPING = "sleeping"  # a durable sleep: the server settles it when it comes due
    AWAITING = "awaiting"  # its function waits for the promises it awaits
    RUNNING = "running"  # a replica holds its task and runs it
    QUEUED = "queued"  # its task waits for a replica of its group to take it
    NO_REPLICA = "no-replica"  # its task waits, and no replica of its group runs
    UNKNOWN = "unknown"  # a promise settled from outside (no task, nothing awaited)


@dataclass(frozen=True)
class Wait:
    """Why a pending promise waits, in words and in what the page links to."""

    kind: WaitKind
    summary: str
    #: The pending promises its function awaits.
    awaits: tuple[str, ...] = ()
    #: The replica that holds its task (its name on the supervisor), when one does.
    holder: str | None = None
    group: str | None = None
    #: The replicas of ``group`` that run.
    running: tuple[str, ...] = ()
    until: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "summary": self.summary,
            "awaits": list(self.awaits),
            "holder": self.holder,
            "group": self.group,
            "running": list(self.running),
            "until": self.until,
        }


def why_pending(
    node: CallNode | None,
    record: PromiseRecord,
    task: TaskRecord | None,
    replicas: Sequence[ReplicaStatus],
) -> Wait:
    """Why ``record`` (pending) waits: read from its graph node, its task and the replicas."""
    group = record.group
    running = tuple(
        replica.name
        for replica in replicas
        if replica.group == group and replica.state is ReplicaState.RUNNING
    )
    if record.is_sleep:
        return Wait(
            WaitKind.SLEEPING,
            "a durable sleep: the server resolves it when it comes due",
            until=record.timeout_at,
        )
    awaited = tuple(
        child.id
        for child in (node.children if node else [])
        if child.state is PromiseState.PENDING and child.kind is not CallKind.DETACHED
    )
    holder = next((r.name for r in replicas if task and task.pid and r.id == task.pid), None)
    if task is not None and task.state == "acquired":
        where = holder or (f"process {task.pid}" if task.pid else "a worker")
        return Wait(
            WaitKind.RUNNING,
            f"its task runs in {where} (acquired {task.version} time(s))",
            awaited,
            holder,
            group,
            running,
        )
    if awaited:
        names = ", ".join(awaited)
        return Wait(WaitKind.AWAITING, f"awaits {names}", awaited, holder, group, running)
    if task is not None and task.state == "pending" and group is not None:
        if not running:
            return Wait(
                WaitKind.NO_REPLICA,
                f"its task waits to be taken: no running replica in {group}",
                group=group,
            )
        return Wait(
            WaitKind.QUEUED,
            f"its task waits for a replica of {group} to take it ({', '.join(running)} run)",
            group=group,
            running=running,
        )
    state = task.state if task is not None else "no task"
    return Wait(
        WaitKind.UNKNOWN,
        f"nothing it awaits is pending ({state}); something outside settles it",
        group=group,
        running=running,
    )


async def promise_detail(
    reader: AsyncServerReader, promise_id: str, replicas: Sequence[ReplicaStatus]
) -> dict[str, Any]:
    """One promise for the detail panel: decoded, its task, its children, why it waits."""
    record = await reader.get(promise_id)
    if record is None:
        raise UnknownInvocation(f"no promise with id {promise_id!r}")
    node = await _node_of(reader, record)
    task = await reader.task(promise_id) if record.group is not None else None
    holder = next((r.name for r in replicas if task and task.pid and r.id == task.pid), None)
    wait = None if record.settled else why_pending(node, record, task, replicas)
    return {
        "promise": promise_json(record),
        "task": None if task is None else {**task.to_json(), "holder": holder},
        "children": [
            {"id": child.id, "function": child.function, "state": str(child.state)}
            for child in (node.children if node else [])
        ],
        "wait": None if wait is None else wait.to_json(),
    }


async def _node_of(reader: AsyncServerReader, record: PromiseRecord) -> CallNode | None:
    """``record``'s place in its invocation's call graph; None when that cannot be read."""
    origin = record.tags.get(ORIGIN_TAG) or record.id
    try:
        graph = await reader.call_graph(origin)
    except UnknownInvocation:
        return None
    return next((node for node in graph.walk() if node.id == record.id), None)


@dataclass
class Overview:
    """What the overview shows, from every promise the server holds at ``now`` (ms),
    and its schedules."""

    now: int
    counts: dict[str, int] = field(default_factory=dict)
    #: Invocations started per second, one value per bucket, oldest first.
    rate: list[float] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    #: The schedules, soonest next run first.
    schedules: list[ScheduleRecord] = field(default_factory=list)
    #: Why the schedules could not be read (a server without ``schedule.search``), if so.
    schedules_error: str | None = None

    @classmethod
    def of(
        cls,
        records: Sequence[PromiseRecord],
        now: int,
        schedules: Sequence[ScheduleRecord] = (),
        schedules_error: str | None = None,
    ) -> Overview:
        counts = Counter(str(record.state) for record in records)
        buckets = [0] * (RATE_WINDOW // RATE_BUCKET)
        start = now - RATE_WINDOW * 1000
        for record in records:
            if role_of(record) is Role.ROOT and start <= record.created_at <= now:
                index = min((record.created_at - start) // (RATE_BUCKET * 1000), len(buckets) - 1)
                buckets[index] += 1
        rejected = sorted(
            (record for record in records if record.error is not None),
            key=lambda record: (record.settled_at or 0, record.id),
            reverse=True,
        )
        return cls(
            now=now,
            counts={str(state): counts.get(str(state), 0) for state in PromiseState},
            rate=[count / RATE_BUCKET for count in buckets],
            errors=[promise_json(record) for record in rejected[:RECENT_ERRORS]],
            schedules=list(schedules),
            schedules_error=schedules_error,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "counts": self.counts,
            "total": sum(self.counts.values()),
            "rate": self.rate,
            "rate_window": RATE_WINDOW,
            "rate_bucket": RATE_BUCKET,
            "errors": self.errors,
            "schedules": [schedule.to_json() for schedule in self.schedules],
            "schedules_error": self.schedules_error,
        }


async def overview(reader: AsyncServerReader, now: int) -> Overview:
    """The overview at ``now`` (ms since the epoch), from one search of every promise and
    one read of the schedules.

    A server that does not answer ``schedule.search`` (Resonate's earlier servers over
    HTTP) leaves the schedules out and says why; the rest of the overview stands.
    """
    records = await reader.search()
    try:
        schedules, why = await list_schedules_async(reader), None
    except ServerRefused as error:
        schedules, why = [], str(error)
    return Overview.of(records, now, schedules, why)
