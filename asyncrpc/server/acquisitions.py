"""Who took each task, when, and why it was there to take: a bounded record in memory.

A task's version counts its acquisitions, but not why each happened: a resume after the
promises it awaited settled, a takeover after its holder's lease ran out (the replica
died or hung), a second run after its holder released it. The machine notes why a task
goes back to pending (:meth:`AcquisitionLog.pending`) and who takes it
(:meth:`AcquisitionLog.acquired`); ``task.acquisitions`` answers from here, and the
dashboard's timeline tells resumes from takeovers with it.

It is a diagnostic, not state: nothing reads it to decide anything, it is not in a
snapshot, and it costs a bounded amount of memory: the latest :data:`MAX_TASKS` tasks
acquired, each with its first acquisition and its latest :data:`PER_TASK` - 1. A restart
rebuilds what the log it replays holds; anything older is gone, and an answer then
starts later than the task's first acquisition (its entries say so by their versions).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from asyncrpc.protocol.records import AcquireCause, TaskAcquisition

#: How many tasks keep a record (the latest acquired), and how many acquisitions each keeps.
MAX_TASKS = 10_000
PER_TASK = 16


class AcquisitionLog:
    """The acquisitions of the latest tasks, and why each task in flight is pending."""

    def __init__(self, max_tasks: int = MAX_TASKS, per_task: int = PER_TASK) -> None:
        self.max_tasks = max_tasks
        self.per_task = max(per_task, 2)
        self._log: OrderedDict[str, list[TaskAcquisition]] = OrderedDict()
        #: Why a pending task is pending (absent: it was created so, or the record began later).
        self._why: dict[str, AcquireCause] = {}

    def pending(self, task_id: str, cause: AcquireCause) -> None:
        """``task_id`` is pending again because of ``cause``."""
        self._why[task_id] = cause

    def acquired(self, task_id: str, version: int, pid: str, at: int) -> None:
        """``pid`` acquired ``task_id`` at ``at``, giving it ``version``."""
        why = self._why.pop(task_id, AcquireCause.UNKNOWN)
        entries = self._log.pop(task_id, None) or []
        if version == 1:  # its first acquisition, whatever came before: how it begins
            why, entries = AcquireCause.FIRST, []
        previous = entries[-1].pid if entries else None
        acquisition = TaskAcquisition(version, pid, at, why, previous)
        if len(entries) >= self.per_task:
            del entries[1]  # the first stays: how it began
        entries.append(acquisition)
        self._log[task_id] = entries
        while len(self._log) > self.max_tasks:
            self._log.popitem(last=False)

    def settled(self, task_id: str) -> None:
        """``task_id``'s promise settled: it is never pending again."""
        self._why.pop(task_id, None)

    def forget(self, task_ids: Iterable[str]) -> None:
        """Retention deleted these tasks' promises."""
        for task_id in task_ids:
            self._log.pop(task_id, None)
            self._why.pop(task_id, None)

    def of(self, task_id: str) -> list[TaskAcquisition] | None:
        """``task_id``'s recorded acquisitions, oldest first; None when none is recorded."""
        return self._log.get(task_id)


def acquisition_json(acquisition: TaskAcquisition) -> dict[str, Any]:
    """One acquisition as ``task.acquisitions`` answers it (no field without a value)."""
    record = acquisition.to_json()
    return {key: value for key, value in record.items() if value is not None}
