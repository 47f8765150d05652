"""The SDK's in-process state machine with indexes, for the in-process floor.

The floor benchmark runs the whole topology on the SDK's
``resonate.connections.local.ServerState``. Two of its helpers scan *every
promise ever created*: ``preload`` (on every task acquire) and
``enqueue_settle`` (on every settle), so over a long run the floor would sink
as history grows and flatter the ratio it is compared in. This subclass
answers those two from indexes and leaves every other decision to the parent.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from resonate.connections.local import (
    DurablePromise,
    ServerState,
    Task,
    extract_action_data,
)


class BranchIndexedPromises(dict[str, DurablePromise]):
    """The promise table, keeping an index of promise ids per ``resonate:branch`` tag.

    Promises are only ever added (never removed) and their tags never change,
    so indexing on insert is enough.
    """

    def __init__(self) -> None:
        super().__init__()
        self.by_branch: defaultdict[str, list[str]] = defaultdict(list)

    def __setitem__(self, key: str, value: DurablePromise) -> None:
        if key not in self:
            branch = value.tags.get("resonate:branch")
            if branch is not None:
                self.by_branch[branch].append(key)
        super().__setitem__(key, value)


class IndexedServerState(ServerState):
    """``ServerState`` answering ``preload`` and ``enqueue_settle`` from indexes."""

    def __init__(self) -> None:
        super().__init__()
        self.promises = BranchIndexedPromises()
        #: task id -> ids of the promises whose ``awaiters`` hold that task.
        self.awaiting: defaultdict[str, set[str]] = defaultdict(set)

    def task_suspend(self, now: int, corr_id: Any, req: Any) -> dict[str, Any]:
        response = super().task_suspend(now, corr_id, req)
        task_id = req.get("id")
        actions = req.get("actions")
        if isinstance(actions, list):
            for action in actions:
                awaited = extract_action_data(action)
                awaited_id = awaited.get("awaited") if isinstance(awaited, dict) else None
                promise = self.promises.get(awaited_id) if isinstance(awaited_id, str) else None
                if promise is not None and task_id in promise.awaiters:
                    self.awaiting[task_id].add(promise.id)
        return response

    def preload(self, promise_id: str) -> list[dict[str, Any]]:
        """Same result as the parent's, read from the branch index."""
        promise = self.promises.get(promise_id)
        if promise is None:
            return []
        branch = promise.tags.get("resonate:branch")
        if branch is None:
            return []
        return [
            self.promises[other_id].to_record()
            for other_id in self.promises.by_branch.get(branch, ())
            if other_id != promise_id
        ]

    def enqueue_settle(self, promise_id: str) -> None:
        """The parent's logic, removing the task from only the promises it awaits."""
        task = self.tasks.get(promise_id)
        if task is None:
            promise = self.promises.get(promise_id)
            if promise is not None and "resonate:target" in promise.tags:
                self.tasks[promise_id] = Task(
                    id=promise_id,
                    state="fulfilled",
                    version=0,
                    pid=None,
                    ttl=None,
                    resumes=set(),
                )
            return
        if task.state == "fulfilled":
            return
        task.state = "fulfilled"
        task.pid = None
        task.ttl = None
        task.resumes.clear()
        self.del_t_timeout(promise_id)
        for awaited_id in self.awaiting.pop(promise_id, ()):
            awaited = self.promises.get(awaited_id)
            if awaited is not None:
                awaited.awaiters.discard(promise_id)
