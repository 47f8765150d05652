"""The SDK's protocol state machine, indexed for a long-lived server, plus read views.

``resonate.connections.local.ServerState`` is the reference implementation of
the Resonate protocol's semantics; we reuse it as is. It was written for
short in-process runs, so two of its helpers scan *every promise ever
created*: ``preload`` (on every task acquire) and ``enqueue_settle`` (on every
settle). A server that keeps its history would slow down as it grows, so this
subclass answers those two from indexes and leaves every protocol decision to
the parent.

It also adds the read kinds the CLI needs and the real server has
(``promise.search``, ``task.get``, ``task.search``) and the queries the
network layer needs (which tasks wait for a group, when the next timer is due).
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
from resonate.error import ServerError

#: The kinds answered from the state without changing it (never logged).
READ_KINDS = frozenset({"promise.search", "task.get", "task.search"})

SEARCH_DEFAULT_LIMIT = 100
SEARCH_MAX_LIMIT = 1000
PROMISE_STATES = frozenset(
    {"pending", "resolved", "rejected", "rejected_canceled", "rejected_timedout"}
)
TASK_STATES = frozenset({"pending", "acquired", "suspended", "halted", "fulfilled"})


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
    """``ServerState`` with indexed helpers and read-only query kinds."""

    def __init__(self) -> None:
        super().__init__()
        self.promises = BranchIndexedPromises()
        #: task id -> ids of the promises whose ``awaiters`` hold that task.
        self.awaiting: defaultdict[str, set[str]] = defaultdict(set)

    # -- protocol ------------------------------------------------------------

    def apply(self, now: int, req: Any) -> dict[str, Any]:
        kind = req.get("kind") if isinstance(req, dict) else None
        if kind == "promise.search":
            return self.promise_search(req)
        if kind == "task.get":
            return self.task_get(req)
        if kind == "task.search":
            return self.task_search(req)
        return super().apply(now, req)

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

    # -- indexed replacements for the parent's full scans -------------------

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

    def rebuild_indexes(self) -> None:
        """Recompute the awaiting index from the promises (after loading a snapshot)."""
        self.awaiting.clear()
        for promise in self.promises.values():
            for task_id in promise.awaiters:
                self.awaiting[task_id].add(promise.id)

    # -- queries for the network layer --------------------------------------

    def next_due(self) -> int | None:
        """The earliest promise timeout or task timer, or None when nothing waits."""
        due = [pt.timeout for pt in self.p_timeouts]
        due.extend(tt.timeout for tt in self.t_timeouts)
        return min(due) if due else None

    def pending_tasks(self) -> list[tuple[str, int, str]]:
        """``(task id, version, target address)`` of every task waiting for a worker."""
        waiting = []
        for task in self.tasks.values():
            if task.state != "pending":
                continue
            promise = self.promises.get(task.id)
            address = promise.tags.get("resonate:target") if promise is not None else None
            if address is not None:
                waiting.append((task.id, task.version, address))
        return waiting

    def is_pending(self, task_id: str, version: int) -> bool:
        task = self.tasks.get(task_id)
        return task is not None and task.state == "pending" and task.version == version

    # -- read kinds ----------------------------------------------------------

    def promise_search(self, req: dict[str, Any]) -> dict[str, Any]:
        """Promises filtered by state, tags and id prefix, sorted by id, paged by cursor."""
        state = req.get("state")
        tags = req.get("tags") or {}
        prefix = req.get("idPrefix") or ""
        limit = _limit(req)
        cursor = req.get("cursor")
        if state is not None and state not in PROMISE_STATES:
            raise ServerError(400, f"invalid state {state!r}: one of {sorted(PROMISE_STATES)}")
        matches = sorted(
            (
                promise
                for promise in self.promises.values()
                if (state is None or promise.state == state)
                and promise.id.startswith(prefix)
                and all(promise.tags.get(key) == value for key, value in tags.items())
            ),
            key=lambda promise: promise.id,
        )
        page, next_cursor = _page(matches, cursor, limit)
        return {
            "kind": "promise.search",
            "corrId": req.get("corrId"),
            "status": 200,
            "promises": [promise.to_record() for promise in page],
            "cursor": next_cursor,
        }

    def task_get(self, req: dict[str, Any]) -> dict[str, Any]:
        task_id = req.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise ServerError(400, "missing or empty required field: id")
        task = self.tasks.get(task_id)
        if task is None:
            return {
                "kind": "task.get",
                "corrId": req.get("corrId"),
                "status": 404,
                "error": f"task {task_id} not found",
            }
        return {
            "kind": "task.get",
            "corrId": req.get("corrId"),
            "status": 200,
            "task": task.to_record(),
        }

    def task_search(self, req: dict[str, Any]) -> dict[str, Any]:
        state = req.get("state")
        if state is not None and state not in TASK_STATES:
            raise ServerError(400, f"invalid state {state!r}: one of {sorted(TASK_STATES)}")
        matches = sorted(
            (task for task in self.tasks.values() if state is None or task.state == state),
            key=lambda task: task.id,
        )
        page, next_cursor = _page(matches, req.get("cursor"), _limit(req))
        return {
            "kind": "task.search",
            "corrId": req.get("corrId"),
            "status": 200,
            "tasks": [task.to_record() for task in page],
            "cursor": next_cursor,
        }


def _limit(req: dict[str, Any]) -> int:
    limit = req.get("limit", SEARCH_DEFAULT_LIMIT)
    if limit is None:
        return SEARCH_DEFAULT_LIMIT
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= SEARCH_MAX_LIMIT:
        raise ServerError(400, f"invalid limit {limit!r}: an integer from 1 to {SEARCH_MAX_LIMIT}")
    return limit


def _page[T: (DurablePromise, Task)](
    items: list[T], cursor: Any, limit: int
) -> tuple[list[T], str | None]:
    """The ``limit`` items after ``cursor`` (an id), and the cursor of the next page."""
    if isinstance(cursor, str) and cursor:
        items = [item for item in items if item.id > cursor]
    page = items[:limit]
    next_cursor = page[-1].id if len(items) > limit else None
    return page, next_cursor
