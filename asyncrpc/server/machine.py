"""The protocol's state machine: every request kind and timer, as resonate.sql defines them.

:meth:`Machine.apply` takes one request (kind, data) at a time ``now`` and
answers ``(status, data)``; :meth:`Machine.tick` fires what is due at ``now``
(promise timeouts, task retries and lease expiries, schedule runs). Both are
deterministic, which is what lets the store rebuild the state by replaying
them. Messages a transition causes (``execute`` for a task, ``unblock`` for a
listener) collect in :attr:`Machine.outgoing` for the engine to route once
the change is durable.

Statuses, checks and their order follow resonate.sql function by function
(the comments name them). Indexes replace its table scans: promises per
branch (for ``preload``), callbacks both ways, and one heap per kind of timer
whose stale entries are skipped when they come due.

Memory holds what is in flight: pending promises and their tasks, and the
promises settled by requests not yet committed. A settled promise is final,
so once the log entry that settled it is committed the engine moves it out
(:meth:`Machine.evict`) and
:class:`~asyncrpc.server.history.History` answers for it: every lookup here
(:meth:`Machine.promise`, :meth:`Machine.task`) reads memory first, then the
history, so an answer never depends on where a promise lives.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from asyncrpc.protocol.patterns import WILDCARD, matches
from asyncrpc.protocol.records import AcquireCause
from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import BRANCH_TAG, DELAY_TAG, ORIGIN_TAG, TARGET_TAG
from asyncrpc.server import fields
from asyncrpc.server.acquisitions import AcquisitionLog, acquisition_json
from asyncrpc.server.cron import CronError, next_run
from asyncrpc.server.fields import BadRequest
from asyncrpc.server.history import History, SearchFilter, Settled
from asyncrpc.server.records import (
    RETRY_TIMEOUT_MS,
    SETTLE_STATES,
    Promise,
    Schedule,
    Task,
    TaskState,
    Value,
)
from asyncrpc.server.timers import TimerHeap

STATUS_TEXT = {
    400: "bad request",
    404: "not found",
    409: "conflict",
    422: "unprocessable entity",
    501: "not implemented",
}
SEARCH_DEFAULT_LIMIT = 100
#: ``schedule.search``'s page when no limit is given, as on Resonate's server.
SCHEDULE_SEARCH_DEFAULT_LIMIT = 10
SEARCH_MAX_LIMIT = 1000
#: ``promise.search``'s orders: by id, paged by cursor; or the newest matches first, one page.
SEARCH_ORDERS = ("id", "newest")
LISTENER_SCHEMES = ("http://", "https://")


class ProtocolReply(NamedTuple):
    """The server's reply to one protocol request (a kind such as ``promise.get``).

    ``data`` is the reply envelope's data; ``detail`` explains an error. This and the
    messages below are named tuples: one is made for nearly every request, and a frozen
    dataclass takes four times as long to build.
    """

    status: int
    data: Any
    detail: str | None = None


class Execute(NamedTuple):
    """Run (or resume) this task: its address is the promise's ``resonate:target``."""

    address: str
    task_id: str
    version: int


class Unblock(NamedTuple):
    """The promise a listener at ``address`` waits on has settled."""

    address: str
    promise: dict[str, Any]


Outgoing = Execute | Unblock


def error(status: int, detail: str) -> ProtocolReply:
    return ProtocolReply(status, STATUS_TEXT.get(status, "error"), detail)


def listener_address_ok(address: str | None) -> bool:
    """resonate.sql's listener check: ``http(s)://…`` or ``poll://…`` with an ``@``."""
    if address is None:
        return False
    return address.startswith(LISTENER_SCHEMES) or (
        address.startswith("poll://") and "@" in address
    )


class Machine:
    """Promises, tasks, callbacks, listeners and schedules, with their indexes."""

    def __init__(self, history: History) -> None:
        #: The settled promises on disk (read when memory does not hold a promise).
        self.history = history
        #: The promises in memory: pending ones, and settled ones until their row is committed.
        self.promises: dict[str, Promise] = {}
        #: The tasks of the promises in memory.
        self.tasks: dict[str, Task] = {}
        self.schedules: dict[str, Schedule] = {}
        #: awaited promise id -> awaiter task ids (insertion ordered).
        self.callbacks: defaultdict[str, dict[str, None]] = defaultdict(dict)
        #: awaiter task id -> awaited promise ids (the other direction of ``callbacks``).
        self.awaiting: defaultdict[str, set[str]] = defaultdict(set)
        #: awaited promise id -> listener addresses.
        self.listeners: defaultdict[str, dict[str, None]] = defaultdict(dict)
        #: Pending tasks whose ``execute`` went out: the router hands them to a connecting worker.
        self.dispatched: set[str] = set()
        #: ``resonate:branch`` -> the ids of its promises in memory (insertion ordered).
        self.by_branch: defaultdict[str, dict[str, None]] = defaultdict(dict)
        #: ``resonate:origin`` -> the ids of its promises in memory (``promise.search``).
        self.by_origin: defaultdict[str, dict[str, None]] = defaultdict(dict)
        #: Promises settled since the engine last took them (their rows go with the log entry).
        self.settled: list[Promise] = []
        self._promise_timeouts = TimerHeap(self._promise_due)
        self._task_timeouts = TimerHeap(self._task_due)
        self._schedule_runs = TimerHeap(self._schedule_due)
        #: Who took each task and why (a bounded diagnostic, not state: see acquisitions.py).
        self.acquisitions = AcquisitionLog()
        self.outgoing: list[Outgoing] = []
        #: Set by every mutation; the engine logs a request only when it changed something.
        self.changed = False
        self._kinds: dict[str, Callable[[dict[str, Any], int], ProtocolReply]] = {
            "promise.get": self.promise_get,
            "promise.create": self.promise_create,
            "promise.settle": self.promise_settle,
            "promise.register_callback": self.promise_register_callback,
            "promise.register_listener": self.promise_register_listener,
            "promise.search": self.promise_search,
            "task.get": self.task_get,
            "task.create": self.task_create,
            "task.acquire": self.task_acquire,
            "task.release": self.task_release,
            "task.fulfill": self.task_fulfill,
            "task.suspend": self.task_suspend,
            "task.heartbeat": self.task_heartbeat,
            "task.halt": self.task_halt,
            "task.continue": self.task_continue,
            "task.search": self.task_search,
            "task.acquisitions": self.task_acquisitions,
            "schedule.get": self.schedule_get,
            "schedule.create": self.schedule_create,
            "schedule.delete": self.schedule_delete,
            "schedule.search": self.schedule_search,
        }
        #: The corrId and version of the request being applied (task.fence echoes them).
        self._head: tuple[Any, str] = (None, "1")

    @property
    def kinds(self) -> list[str]:
        return sorted([*self._kinds, "task.fence"])

    # -- entry points --------------------------------------------------------

    def apply(
        self, now: int, kind: str, data: dict[str, Any], corr_id: Any = None, version: str = "1"
    ) -> ProtocolReply:
        """Answer one request; unknown kinds are 501, as on Resonate's servers."""
        if kind == "task.fence":
            self._head = (corr_id, version)
            handler: Callable[[dict[str, Any], int], ProtocolReply] | None = self.task_fence
        else:
            handler = self._kinds.get(kind)
        if handler is None:
            return error(501, f"unknown request kind {kind!r}; valid kinds: {self.kinds}")
        try:
            return handler(data, now)
        except BadRequest as exc:
            return error(400, f"{kind}: {exc}")

    def tick(self, now: int) -> None:
        """Fire everything due at ``now``: promise timeouts, then task timers, then schedules."""
        for promise_id in self._promise_timeouts.pop_due(now):
            self._time_out(self.promises[promise_id], now)
        for task_id in self._task_timeouts.pop_due(now):
            task = self.tasks[task_id]
            if task.state is TaskState.ACQUIRED:  # _on_task_lease_timeout
                task.pid = task.ttl = None
                self.acquisitions.pending(task_id, AcquireCause.LEASE)
            self._to_pending(task, now, self.promises.get(task_id))
        for schedule_id in self._schedule_runs.pop_due(now):
            self._run_schedule(self.schedules[schedule_id], now)

    def next_due(self) -> int | None:
        """When :meth:`tick` next has something to do (None: nothing waits)."""
        heaps = (self._promise_timeouts, self._task_timeouts, self._schedule_runs)
        due = [at for at in (heap.next_at() for heap in heaps) if at is not None]
        return min(due) if due else None

    # -- promises ------------------------------------------------------------

    def promise(self, promise_id: str | None) -> Promise | None:
        """The promise ``promise_id`` names, in memory or settled on disk (None: no such)."""
        if promise_id is None:
            return None  # SQL's NULL matches no row
        found = self.promises.get(promise_id)
        return found if found is not None else self.history.promise(promise_id)

    def task(self, task_id: str | None) -> Task | None:
        """The task ``task_id`` names, in memory or (fulfilled) on disk (None: no such)."""
        if task_id is None:
            return None
        found = self.tasks.get(task_id)
        if found is not None or task_id in self.promises:
            return found
        return self.history.task(task_id)

    def promise_get(self, data: dict[str, Any], now: int) -> ProtocolReply:
        promise = self.promise(fields.text(data, "id"))
        if promise is None:
            return error(404, "no such promise")
        return ProtocolReply(200, {"promise": promise.to_json(now)})

    def promise_create(self, data: dict[str, Any], now: int) -> ProtocolReply:
        status, promise = self._create(
            fields.text(data, "id"),
            fields.integer(data, "timeoutAt"),
            fields.obj(data, "param"),
            fields.tags(data, "tags"),
            now,
        )
        if promise is None:
            return error(status, "promise.create needs 'id' and 'timeoutAt'")
        return ProtocolReply(200, {"promise": promise.to_json(now)})

    def promise_settle(self, data: dict[str, Any], now: int) -> ProtocolReply:
        state = fields.text(data, "state")
        if state not in SETTLE_STATES:
            return error(400, f"state must be one of {sorted(SETTLE_STATES)}, got {state!r}")
        promise = self.promise(fields.text(data, "id"))
        if promise is None:
            return error(404, "no such promise")
        if promise.is_open(now):
            self._settle(promise, PromiseState(state), _value(fields.obj(data, "value")), now, now)
        return ProtocolReply(200, {"promise": promise.to_json(now)})

    def promise_register_callback(self, data: dict[str, Any], now: int) -> ProtocolReply:
        awaited_id, awaiter_id = fields.text(data, "awaited"), fields.text(data, "awaiter")
        if awaited_id is not None and awaited_id == awaiter_id:
            return error(400, "a promise cannot await itself")
        awaited = self.promise(awaited_id)
        if awaited is None:
            return error(404, "no such awaited promise")
        awaiter = self.promise(awaiter_id)
        if awaiter is None or TARGET_TAG not in awaiter.tags:
            return error(422, "the awaiter must be an existing promise with a task")
        if not awaited.external:
            return error(422, "only external promises (a target, a timer, external) can be awaited")
        if awaited.is_open(now) and awaiter.is_open(now):
            self._add_callback(awaited.id, awaiter.id)
        return ProtocolReply(200, {"promise": awaited.to_json(now)})

    def promise_register_listener(self, data: dict[str, Any], now: int) -> ProtocolReply:
        address = fields.text(data, "address")
        if not listener_address_ok(address):
            return error(400, f"address must be poll://…@… or http(s)://…, got {address!r}")
        assert address is not None
        promise = self.promise(fields.text(data, "awaited"))
        if promise is None:
            return error(404, "no such promise")
        if promise.is_open(now) and address not in self.listeners.get(promise.id, ()):
            self.listeners[promise.id][address] = None
            self.changed = True
        return ProtocolReply(200, {"promise": promise.to_json(now)})

    def promise_search(self, data: dict[str, Any], now: int) -> ProtocolReply:
        """Our extension: promises by state, tags and id prefix, sorted by id, paged by cursor.

        With ``order: newest``, the newest ``limit`` matches instead (by creation time),
        newest first, in one page: memory's matches merged with the disk's newest, read
        newest first, so its cost does not grow with the promises stored.
        """
        state = fields.text(data, "state")
        if state is not None and state not in {s.value for s in PromiseState}:
            return error(400, f"state must be one of {[s.value for s in PromiseState]}")
        order = fields.text(data, "order") or "id"
        if order not in SEARCH_ORDERS:
            return error(400, f"order must be one of {list(SEARCH_ORDERS)}, got {order!r}")
        wanted = fields.tags(data, "tags")
        prefix = fields.text(data, "idPrefix") or ""
        limit = _limit(data)
        after = fields.text(data, "cursor") or ""
        if order == "newest" and after:
            return error(400, "a newest-first search is one page: it takes no cursor")
        origin = wanted.get(ORIGIN_TAG)
        candidates: Iterable[Promise] = (
            (self.promises[promise_id] for promise_id in self.by_origin.get(origin, ()))
            if isinstance(origin, str)
            else self.promises.values()
        )
        matches = [
            promise
            for promise in candidates
            if promise.id.startswith(prefix)
            and promise.id > after
            and all(promise.tags.get(key) == value for key, value in wanted.items())
            and (state is None or promise.state_at(now) == state)
        ]
        # Settled on disk: a promise past its timeout is still pending, so in memory.
        wanted_filter = SearchFilter(prefix=prefix, cursor=after, tags=wanted, state=state)
        if order == "newest":
            stored = self.history.newest(wanted_filter, limit, skip=self.promises)
            newest = sorted(matches + stored, key=_creation, reverse=True)[:limit]
            return ProtocolReply(200, {"promises": [p.to_json(now) for p in newest]})
        stored = self.history.search(wanted_filter, limit + 1, skip=self.promises)
        page, cursor = _first(matches + stored, limit)
        return ProtocolReply(200, _paged("promises", [p.to_json(now) for p in page], cursor))

    # -- tasks ---------------------------------------------------------------

    def task_get(self, data: dict[str, Any], now: int) -> ProtocolReply:
        task = self.task(fields.text(data, "id"))
        promise = self.promise(task.id) if task is not None else None
        if task is None or promise is None:
            return error(404, "no such task")
        if promise.is_open(now):
            return ProtocolReply(200, {"task": task.to_json()})
        return ProtocolReply(
            200,
            {"task": {"id": task.id, "state": "fulfilled", "version": task.version, "resumes": 0}},
        )

    def task_create(self, data: dict[str, Any], now: int) -> ProtocolReply:
        action = _action_data(data)
        promise_id, timeout_at = fields.text(action, "id"), fields.integer(action, "timeoutAt")
        pid, ttl = fields.text(data, "pid"), fields.integer(data, "ttl")
        tags = fields.tags(action, "tags")
        if promise_id is None or timeout_at is None or pid is None or ttl is None:
            return error(400, "task.create needs pid, ttl and an action with id and timeoutAt")
        if TARGET_TAG not in tags:
            return error(400, "task.create's promise needs a resonate:target tag")
        promise = self.promise(promise_id)
        resumed_by: tuple[str, ...] = ()
        if promise is None:
            if timeout_at > now:
                _lease_end(now, ttl)
            promise = self._insert(promise_id, timeout_at, fields.obj(action, "param"), tags, now)
            if promise.state is PromiseState.PENDING:
                task = self._new_task(promise_id, TaskState.ACQUIRED, version=1)
                self._lease(task, pid, ttl, now)
                self.acquisitions.acquired(promise_id, 1, pid, now)
            else:
                task = self._new_task(promise_id, TaskState.FULFILLED)
        else:
            if TARGET_TAG not in promise.tags:
                return error(422, "the promise exists and has no task (no resonate:target tag)")
            found = self.task(promise_id)
            if found is None:
                return error(409, "the promise exists without a task")
            task = found
            if task.state is TaskState.PENDING:
                _lease_end(now, ttl)
                resumed_by = tuple(sorted(task.resumes))
                self._acquire(task, pid, ttl, now)
            elif task.state is not TaskState.FULFILLED:
                return error(409, f"the task is {task.state.value}")
        answer = {"task": task.to_json(), "promise": promise.to_json()}
        return ProtocolReply(200, {**answer, "preload": self._preload(promise, now, resumed_by)})

    def task_acquire(self, data: dict[str, Any], now: int) -> ProtocolReply:
        version = fields.integer(data, "version", bits=32)
        pid, ttl = fields.text(data, "pid"), fields.integer(data, "ttl")
        if pid is None or ttl is None:
            return error(400, "task.acquire needs pid and ttl")
        task, promise, failure = self._task_for(data, now, TaskState.PENDING, version)
        if failure is not None:
            return failure
        _lease_end(now, ttl)
        resumed_by = tuple(sorted(task.resumes))
        self._acquire(task, pid, ttl, now)
        answer = {"task": task.to_json(), "promise": promise.to_json(now)}
        return ProtocolReply(200, {**answer, "preload": self._preload(promise, now, resumed_by)})

    def task_fence(self, data: dict[str, Any], now: int) -> ProtocolReply:
        action = fields.obj(data, "action")
        request = _action_data(data)
        inner_kind = (
            "promise.create"
            if isinstance(action, dict) and action.get("kind") == "promise.create"
            else "promise.settle"
        )
        task_id = fields.text(data, "id")
        if task_id is not None and fields.text(request, "id") == task_id:
            return error(400, "a task cannot fence its own promise (use task.fulfill)")
        version = fields.integer(data, "version", bits=32)
        _, promise, failure = self._task_for(data, now, TaskState.ACQUIRED, version)
        if failure is not None:
            return failure
        if inner_kind == "promise.create":
            inner = self.promise_create(request, now)
        else:
            inner = self.promise_settle(request, now)
        corr_id, head_version = self._head
        envelope = {
            "kind": inner_kind,
            "head": {"corrId": corr_id, "status": inner.status, "version": head_version},
            "data": inner.data,
        }
        return ProtocolReply(200, {"action": envelope, "preload": self._preload(promise, now)})

    def task_heartbeat(self, data: dict[str, Any], now: int) -> ProtocolReply:
        pid = fields.text(data, "pid")
        refs = [
            (fields.text(ref, "id"), fields.integer(ref, "version", bits=32))
            for ref in fields.array(data, "tasks")
        ]
        renewed = []
        for task_id, version in refs:
            task = _row(self.tasks, task_id)  # an acquired task is in flight: in memory
            promise = _row(self.promises, task_id)
            if (
                task is not None
                and promise is not None
                and task.state is TaskState.ACQUIRED
                and task.version == version
                and task.pid == pid
                and promise.is_open(now)
            ):
                renewed.append((task, _lease_end(now, task.ttl or 0)))
        for task, until in renewed:  # all or none, as one UPDATE is
            self._set_timeout(task, until)
        return ProtocolReply(200, {})

    def task_suspend(self, data: dict[str, Any], now: int) -> ProtocolReply:
        task_id = fields.text(data, "id")
        actions = [fields.obj(action, "data") for action in fields.array(data, "actions")]
        awaited_ids = [fields.text(action, "awaited") for action in actions]
        if not actions:
            return error(400, "task.suspend needs at least one action")
        if task_id is not None and task_id in awaited_ids:
            return error(400, "a task cannot await its own promise")
        named = [awaited for awaited in awaited_ids if awaited is not None]
        if len(set(named)) != len(named):
            return error(400, "a promise is awaited twice in one suspend")
        version = fields.integer(data, "version", bits=32)
        task, _, failure = self._task_for(data, now, TaskState.ACQUIRED, version)
        if failure is not None:
            return failure
        awaited = [self.promise(awaited_id) for awaited_id in awaited_ids]
        if any(promise is None for promise in awaited):
            return error(422, "an awaited promise does not exist")
        found = [promise for promise in awaited if promise is not None]
        if any(not promise.external for promise in found):
            return error(422, "only external promises (a target, a timer, external) can be awaited")
        promise = self.promises[task.id]
        settled = tuple(p.id for p in found if not p.is_open(now))
        if settled:
            if task.resumes:
                task.resumes.clear()
                self.changed = True
            return ProtocolReply(300, {"preload": self._preload(promise, now, settled)})
        for awaited_promise in found:
            self._add_callback(awaited_promise.id, task.id)
        task.resumes.clear()
        task.pid = task.ttl = None
        self._set_state(task, TaskState.SUSPENDED)
        return ProtocolReply(200, {"preload": []})

    def task_fulfill(self, data: dict[str, Any], now: int) -> ProtocolReply:
        action = _action_data(data)
        state = fields.text(action, "state")
        if state not in SETTLE_STATES:
            return error(400, f"state must be one of {sorted(SETTLE_STATES)}, got {state!r}")
        version = fields.integer(data, "version", bits=32)
        _, promise, failure = self._task_for(data, now, TaskState.ACQUIRED, version)
        if failure is not None:
            return failure
        value = _value(fields.obj(action, "value"))
        self._settle(promise, PromiseState(state), value, now, now)
        return ProtocolReply(200, {"promise": promise.to_json()})

    def task_release(self, data: dict[str, Any], now: int) -> ProtocolReply:
        version = fields.integer(data, "version", bits=32)
        task, promise, failure = self._task_for(data, now, TaskState.ACQUIRED, version)
        if failure is not None:
            return failure
        task.pid = task.ttl = None
        self.acquisitions.pending(task.id, AcquireCause.RELEASE)
        self._to_pending(task, now, promise)
        return ProtocolReply(200, {})

    def task_halt(self, data: dict[str, Any], now: int) -> ProtocolReply:
        task = self.task(fields.text(data, "id"))
        if task is None:
            return error(404, "no such task")
        if task.state is TaskState.FULFILLED:
            return error(409, "the task is fulfilled")
        if task.state is not TaskState.HALTED:
            task.pid = task.ttl = None
            self._set_state(task, TaskState.HALTED)
        return ProtocolReply(200, {})

    def task_continue(self, data: dict[str, Any], now: int) -> ProtocolReply:
        task = self.task(fields.text(data, "id"))
        if task is None:
            return error(404, "no such task")
        if task.state is not TaskState.HALTED:
            return error(409, f"the task is {task.state.value}, not halted")
        self.acquisitions.pending(task.id, AcquireCause.CONTINUE)
        self._to_pending(task, now, self.promises.get(task.id))
        return ProtocolReply(200, {})

    def task_search(self, data: dict[str, Any], now: int) -> ProtocolReply:
        """Our extension: tasks by state, sorted by id, paged by cursor."""
        state = fields.text(data, "state")
        if state is not None and state not in {s.value for s in TaskState}:
            return error(400, f"state must be one of {[s.value for s in TaskState]}")
        limit = _limit(data)
        after = fields.text(data, "cursor") or ""
        matches = [
            task
            for task in self.tasks.values()
            if (state is None or task.state == state) and task.id > after
        ]
        if state is None or state == TaskState.FULFILLED:
            matches += self.history.fulfilled_tasks(after, limit + 1, skip=self.tasks)
        page, cursor = _first(matches, limit)
        return ProtocolReply(200, _paged("tasks", [task.to_json() for task in page], cursor))

    def task_acquisitions(self, data: dict[str, Any], now: int) -> ProtocolReply:
        """Our extension: who took the task, when, and why it was there to take.

        A bounded record in memory (:mod:`asyncrpc.server.acquisitions`): 404 when it
        holds none for the task (never acquired, or not among the latest).
        """
        task_id = fields.text(data, "id")
        found = self.acquisitions.of(task_id) if task_id is not None else None
        if not found:
            return error(
                404,
                "no acquisition of this task is on record: it was never acquired, or not "
                "lately (the server keeps the latest tasks' acquisitions, in memory)",
            )
        return ProtocolReply(200, {"acquisitions": [acquisition_json(a) for a in found]})

    # -- schedules -----------------------------------------------------------

    def schedule_get(self, data: dict[str, Any], now: int) -> ProtocolReply:
        schedule = _row(self.schedules, fields.text(data, "id"))
        if schedule is None:
            return error(404, "no such schedule")
        return ProtocolReply(200, {"schedule": schedule.to_json()})

    def schedule_create(self, data: dict[str, Any], now: int) -> ProtocolReply:
        schedule_id, cron = fields.text(data, "id"), fields.text(data, "cron")
        promise_id = fields.text(data, "promiseId")
        promise_timeout = fields.integer(data, "promiseTimeout")
        promise_tags = fields.tags(data, "promiseTags")
        if schedule_id is None or cron is None or promise_id is None or promise_timeout is None:
            return error(400, "schedule.create needs id, cron, promiseId and promiseTimeout")
        existing = self.schedules.get(schedule_id)
        if existing is not None:
            return ProtocolReply(200, {"schedule": existing.to_json()})
        try:
            next_run_at = next_run(cron, now)
        except CronError as exc:
            return error(400, str(exc))
        schedule = Schedule(
            id=schedule_id,
            cron=cron,
            promise_id=promise_id,
            promise_timeout=promise_timeout,
            promise_param=_value(fields.obj(data, "promiseParam")),
            promise_tags=promise_tags,
            created_at=now,
            next_run_at=next_run_at,
        )
        self.schedules[schedule_id] = schedule
        self._schedule_runs.push(next_run_at, schedule_id)
        self.changed = True
        return ProtocolReply(200, {"schedule": schedule.to_json()})

    def schedule_search(self, data: dict[str, Any], now: int) -> ProtocolReply:
        """Schedules as Resonate's server finds them, sorted by id, paged by cursor.

        ``tags`` must each equal the schedule's promise tag of that name (text, as
        Resonate's server reads them); ``limit`` is 1..1000, 10 by default; ``cursor``
        is the last id of the page before. ``id``, a pattern with ``*`` wildcards
        (Resonate's earlier server's), narrows by id; absent, every id matches.
        """
        pattern = fields.text(data, "id") or WILDCARD
        wanted = fields.tags(data, "tags")
        for key, value in wanted.items():
            if not isinstance(value, str):
                raise BadRequest(
                    f"field 'tags' must map names to text, got {key!r}: {fields.json_text(value)}"
                )
        limit = _limit(data, SCHEDULE_SEARCH_DEFAULT_LIMIT)
        after = fields.text(data, "cursor") or ""
        found = [
            schedule
            for schedule in self.schedules.values()
            if schedule.id > after
            and matches(pattern, schedule.id)
            and all(fields.text(schedule.promise_tags, k) == v for k, v in wanted.items())
        ]
        page, cursor = _first(found, limit)
        return ProtocolReply(200, _paged("schedules", [s.to_json() for s in page], cursor))

    def schedule_delete(self, data: dict[str, Any], now: int) -> ProtocolReply:
        if _pop(self.schedules, fields.text(data, "id")) is None:
            return error(404, "no such schedule")
        self.changed = True
        return ProtocolReply(200, {})

    # -- transitions ---------------------------------------------------------

    def _create(
        self, promise_id: str | None, timeout_at: int | None, param: Any, tags: Any, now: int
    ) -> tuple[int, Promise | None]:
        """resonate.sql's promise_create: an existing promise is answered as it is (200)."""
        if promise_id is None or timeout_at is None:
            return 400, None
        existing = self.promise(promise_id)
        if existing is not None:
            return 200, existing
        pending = timeout_at > now
        target = tags.get(TARGET_TAG)
        # The delay is read only for a pending promise with a target, as there: a promise
        # born timed out gets its fulfilled task whatever its delay says.
        delay = fields.integer(tags, DELAY_TAG) if pending and target is not None else None
        promise = self._insert(promise_id, timeout_at, param, tags, now)
        if pending and target is not None:
            task = self._new_task(promise_id, TaskState.PENDING)
            if delay is not None and delay > now:
                self._set_timeout(task, delay)
            else:
                self._set_timeout(task, now + RETRY_TIMEOUT_MS)
                self._execute(task, promise)
        elif not pending and TARGET_TAG in tags:  # `tags ? 'resonate:target'`: even a null one
            self._new_task(promise_id, TaskState.FULFILLED)
        return 200, promise

    def _insert(
        self, promise_id: str, timeout_at: int, param: Any, tags: dict[str, Any], now: int
    ) -> Promise:
        """A new promise; one whose timeout has already passed is born settled by it."""
        promise = Promise(
            id=promise_id,
            state=PromiseState.PENDING,
            param=_value(param),
            value=Value(),
            tags=tags,
            timeout_at=timeout_at,
            created_at=now,
        )
        if timeout_at <= now:
            promise.state = promise.timeout_state()
            promise.created_at = promise.settled_at = timeout_at
            self.settled.append(promise)
        self._index(promise)
        self.changed = True
        return promise

    def _index(self, promise: Promise) -> None:
        self.promises[promise.id] = promise
        branch = promise.tags.get(BRANCH_TAG)
        if isinstance(branch, str):
            self.by_branch[branch][promise.id] = None
        origin = promise.tags.get(ORIGIN_TAG)
        if isinstance(origin, str):
            self.by_origin[origin][promise.id] = None
        if promise.state is PromiseState.PENDING and promise.external:
            self._promise_timeouts.push(promise.timeout_at, promise.id)

    def _settle(
        self, promise: Promise, state: PromiseState, value: Value, settled_at: int, now: int
    ) -> None:
        promise.state = state
        promise.value = value
        promise.settled_at = settled_at
        self.changed = True
        self.settled.append(promise)
        self._cascade(promise, now)

    def _time_out(self, promise: Promise, now: int) -> None:
        """_on_promise_timeout: settled by its timeout, as of the timeout."""
        self._settle(promise, promise.timeout_state(), Value(), promise.timeout_at, now)

    def _cascade(self, promise: Promise, now: int) -> None:
        """_cascade_settle: fulfil its task, notify listeners, resume awaiters."""
        task = self.tasks.get(promise.id)
        if task is not None:
            task.pid = task.ttl = None
            task.resumes.clear()
            self._set_state(task, TaskState.FULFILLED)
            self.acquisitions.settled(task.id)
        addresses = self.listeners.pop(promise.id, {})
        if addresses:
            record = promise.to_json(now)
            self.outgoing.extend(Unblock(address, record) for address in sorted(addresses))
        for awaited_id in self.awaiting.pop(promise.id, set()):
            awaiters = self.callbacks.get(awaited_id)
            if awaiters is not None:
                awaiters.pop(promise.id, None)
                if not awaiters:
                    del self.callbacks[awaited_id]
        for awaiter_id in sorted(self.callbacks.pop(promise.id, {})):
            awaiting = self.awaiting.get(awaiter_id)
            if awaiting is not None:
                awaiting.discard(promise.id)
                if not awaiting:
                    del self.awaiting[awaiter_id]
            self._resume(promise.id, awaiter_id, now)

    def _resume(self, awaited_id: str, awaiter_id: str, now: int) -> None:
        """_enqueue_resume: a suspended awaiter becomes pending; others note the resume."""
        task = self.tasks.get(awaiter_id)
        if task is None:
            return
        if task.state is TaskState.SUSPENDED:
            task.resumes = {awaited_id}
            self.acquisitions.pending(awaiter_id, AcquireCause.AWAITED)
            self._to_pending(task, now, self.promises.get(awaiter_id))
        elif task.state is not TaskState.FULFILLED:
            task.resumes.add(awaited_id)

    def _run_schedule(self, schedule: Schedule, now: int) -> None:
        """_on_schedule_timeout: create each due run's promise, as of its run time."""
        while schedule.next_run_at <= now:
            run_at = schedule.next_run_at
            with contextlib.suppress(BadRequest):  # a resonate:delay tag that is not a number
                self._create(
                    schedule.promise_id_at(run_at),
                    run_at + schedule.promise_timeout,
                    schedule.promise_param.to_json(),
                    dict(schedule.promise_tags),
                    run_at,
                )
            schedule.last_run_at = run_at
            schedule.next_run_at = next_run(schedule.cron, run_at)
        self._schedule_runs.push(schedule.next_run_at, schedule.id)
        self.changed = True

    def _add_callback(self, awaited_id: str, awaiter_id: str) -> None:
        if awaiter_id not in self.callbacks[awaited_id]:
            self.callbacks[awaited_id][awaiter_id] = None
            self.awaiting[awaiter_id].add(awaited_id)
            self.changed = True

    def _new_task(self, task_id: str, state: TaskState, version: int = 0) -> Task:
        task = Task(id=task_id, state=state, version=version)
        self.tasks[task_id] = task
        self.changed = True
        return task

    def _acquire(self, task: Task, pid: str, ttl: int, now: int) -> None:
        task.resumes.clear()
        task.version += 1
        self._set_state(task, TaskState.ACQUIRED)
        self._lease(task, pid, ttl, now)
        self.acquisitions.acquired(task.id, task.version, pid, now)

    def _lease(self, task: Task, pid: str, ttl: int, now: int) -> None:
        task.pid, task.ttl = pid, ttl
        self._set_timeout(task, now + ttl)

    def _to_pending(self, task: Task, now: int, promise: Promise | None) -> None:
        """Back to pending, retried in ``RETRY_TIMEOUT_MS``; its ``execute`` goes out now."""
        self._set_state(task, TaskState.PENDING)
        self._set_timeout(task, now + RETRY_TIMEOUT_MS)
        if promise is not None:
            self._execute(task, promise)

    def _execute(self, task: Task, promise: Promise) -> None:
        target = promise.target
        if target is not None:
            self.outgoing.append(Execute(target, task.id, task.version))
            self.dispatched.add(task.id)

    def _set_state(self, task: Task, state: TaskState) -> None:
        task.state = state
        if state is not TaskState.PENDING:
            self.dispatched.discard(task.id)
        self.changed = True

    def _set_timeout(self, task: Task, at: int) -> None:
        task.timeout_at = at
        self._task_timeouts.push(at, task.id)
        self.changed = True

    def _task_for(
        self, data: dict[str, Any], now: int, state: TaskState, version: int | None
    ) -> tuple[Task, Promise, ProtocolReply | None]:
        """The task ``data`` names, if it is in ``state`` at ``version`` with an open promise.

        The checks and their order are resonate.sql's for acquire, release,
        fulfill, suspend and fence: 404 without the task, else 409.
        """
        task = self.task(fields.text(data, "id"))
        if task is None:
            return _NO_TASK, _NO_PROMISE, error(404, "no such task")
        promise = self.promise(task.id)
        if promise is None:
            return task, _NO_PROMISE, error(409, "the task has no promise")
        if task.state is not state:
            return task, promise, error(409, f"the task is {task.state.value}, not {state.value}")
        if not promise.is_open(now):
            return task, promise, error(409, "the task's promise is settled or timed out")
        if task.version != version:
            detail = f"the task is at version {task.version}, not {version}"
            return task, promise, error(409, detail)
        return task, promise, None

    def _preload(
        self, promise: Promise, now: int, awaited: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        """What a run replays from without asking: the rest of its branch, and what it awaited.

        ``awaited`` names the settled promises the task runs on because of (the
        ones that resumed it, or that a suspend found settled). They are in another
        branch when they are another task's (an ``rpc``), so without them the run's
        replay would ask for each again (a fenced create answered from the store),
        one request per resume.
        """
        preload: list[dict[str, Any]] = []
        seen = {promise.id}
        branch = promise.tags.get(BRANCH_TAG)
        if isinstance(branch, str):
            in_memory = self.by_branch.get(branch, {})
            for other in in_memory:
                if other not in seen:
                    seen.add(other)
                    preload.append(self.promises[other].to_json(now))
            for stored in self.history.branch(branch):
                if stored.id not in seen:
                    seen.add(stored.id)
                    preload.append(stored.to_json(now))
        for awaited_id in awaited:
            if awaited_id not in seen and (found := self.promise(awaited_id)) is not None:
                seen.add(awaited_id)
                if not found.is_open(now):
                    preload.append(found.to_json(now))
        return preload

    # -- timer heaps ---------------------------------------------------------

    def _promise_due(self, at: int, promise_id: str) -> bool:
        promise = self.promises.get(promise_id)
        return (
            promise is not None
            and promise.state is PromiseState.PENDING
            and promise.timeout_at == at
        )

    def _task_due(self, at: int, task_id: str) -> bool:
        task = self.tasks.get(task_id)
        return (
            task is not None
            and task.state in (TaskState.PENDING, TaskState.ACQUIRED)
            and task.timeout_at == at
        )

    def _schedule_due(self, at: int, schedule_id: str) -> bool:
        schedule = self.schedules.get(schedule_id)
        return schedule is not None and schedule.next_run_at == at

    # -- snapshots -----------------------------------------------------------

    def rebuild(self) -> None:
        """Recompute every index and timer heap from the records (after loading a snapshot)."""
        self.by_branch.clear()
        self.by_origin.clear()
        self._promise_timeouts.reset(())
        promises, self.promises = self.promises, {}
        for promise in promises.values():
            self._index(promise)
        self._task_timeouts.reset(
            (task.timeout_at, task.id)
            for task in self.tasks.values()
            if task.timeout_at is not None and task.state in (TaskState.PENDING, TaskState.ACQUIRED)
        )
        self._schedule_runs.reset((s.next_run_at, s.id) for s in self.schedules.values())
        self.awaiting.clear()
        for awaited_id, awaiters in self.callbacks.items():
            for awaiter_id in awaiters:
                self.awaiting[awaiter_id].add(awaited_id)

    # -- memory and history ----------------------------------------------------

    def take_settled(self) -> list[Settled]:
        """The promises settled since the last call, with their tasks' versions."""
        if not self.settled:
            return []
        settled, self.settled = self.settled, []
        tasks = self.tasks
        return [
            Settled(promise, task.version if (task := tasks.get(promise.id)) else None)
            for promise in settled
        ]

    def evict(self, promise_ids: Iterable[str]) -> None:
        """Move these settled promises (their settlements committed) out of memory, with their
        tasks: the history answers for them."""
        for promise_id in promise_ids:
            promise = self.promises.get(promise_id)
            if promise is None or promise.state is PromiseState.PENDING:
                continue
            del self.promises[promise_id]
            task = self.tasks.pop(promise_id, None)
            self._unindex(promise)
            self.history.remember(Settled(promise, None if task is None else task.version))

    def evict_settled(self) -> None:
        """Move every settled promise out of memory (after recovery: their rows are on disk or
        wait in the history)."""
        self.evict([p.id for p in self.promises.values() if p.state is not PromiseState.PENDING])

    def forget(self, promise_ids: Iterable[str]) -> None:
        """Retention deleted these settled promises: no task is owed a resume from them."""
        gone = set(promise_ids)
        for promise_id in gone:
            promise = self.promises.pop(promise_id, None)
            if promise is not None:  # settled while a replay runs: still in memory
                self.tasks.pop(promise_id, None)
                self._unindex(promise)
        self.history.forget(gone)
        self.acquisitions.forget(gone)
        for task in self.tasks.values():
            if task.resumes and not task.resumes.isdisjoint(gone):
                task.resumes -= gone
        self.changed = True

    def _unindex(self, promise: Promise) -> None:
        for tag, index in ((BRANCH_TAG, self.by_branch), (ORIGIN_TAG, self.by_origin)):
            key = promise.tags.get(tag)
            if isinstance(key, str) and (ids := index.get(key)) is not None:
                ids.pop(promise.id, None)
                if not ids:
                    del index[key]

    def pending_dispatches(self) -> list[tuple[str, int, str]]:
        """``(task id, version, target)`` of every pending task whose ``execute`` went out."""
        waiting = []
        for task_id in self.dispatched:
            task = self.tasks[task_id]
            target = self.promises[task_id].target
            if target is not None:
                waiting.append((task_id, task.version, target))
        return waiting

    def is_pending(self, task_id: str, version: int) -> bool:
        task = self.tasks.get(task_id)
        return task is not None and task.state is TaskState.PENDING and task.version == version

    def holds(self, pid: str, task_id: str, version: int) -> bool:
        """Whether ``pid`` holds the lease of ``task_id`` at ``version``."""
        task = self.tasks.get(task_id)
        return (
            task is not None
            and task.state is TaskState.ACQUIRED
            and task.version == version
            and task.pid == pid
        )

    def holder(self, task_id: str) -> str | None:
        """The pid that holds ``task_id``'s lease, if one does."""
        task = self.tasks.get(task_id)
        return task.pid if task is not None and task.state is TaskState.ACQUIRED else None


_NO_TASK = Task(id="", state=TaskState.FULFILLED)
_NO_PROMISE = Promise(
    id="",
    state=PromiseState.PENDING,
    param=Value(),
    value=Value(),
    tags={},
    timeout_at=0,
    created_at=0,
)


def _value(raw: Any) -> Value:
    """A ``param``/``value`` object as resonate.sql stores it: headers default to {}.

    A null ``headers`` is {} too (resonate.sql keeps the null): as every field,
    null is absent here, and a record's headers stay an object, which the
    TypeScript SDK requires.
    """
    if not isinstance(raw, dict):
        return Value()
    headers = raw.get("headers")
    return Value(headers={} if headers is None else headers, data=fields.text(raw, "data"))


def _lease_end(now: int, ttl: int) -> int:
    """``now + ttl`` as a bigint; past its range a 400, as Postgres's overflow is."""
    end = now + ttl
    if not -fields.BIGINT_MAX - 1 <= end <= fields.BIGINT_MAX:
        raise BadRequest(f"field 'ttl' {ttl} puts the lease's end past a 64-bit time")
    return end


def _action_data(data: dict[str, Any]) -> Any:
    """``data->'action'->'data'``: the nested request a task kind carries."""
    return fields.obj(fields.obj(data, "action"), "data")


def _limit(data: dict[str, Any], default: int = SEARCH_DEFAULT_LIMIT) -> int:
    """A search's ``limit``: how many records a page holds (``default`` when not given)."""
    limit = fields.integer(data, "limit")
    if limit is None:
        return default
    if not 1 <= limit <= SEARCH_MAX_LIMIT:
        raise BadRequest(f"field 'limit' must be from 1 to {SEARCH_MAX_LIMIT}, got {limit}")
    return limit


def _first[T: (Promise, Task, Schedule)](items: list[T], limit: int) -> tuple[list[T], str | None]:
    """Sorted by id: the first ``limit`` items (all after the cursor), and the next cursor.

    ``items`` are the matches from memory and the first ``limit + 1`` from the disk,
    so whether a next page exists is known without reading it.
    """
    ordered = sorted(items, key=lambda item: item.id)
    page = ordered[:limit]
    return page, page[-1].id if len(ordered) > limit else None


def _creation(promise: Promise) -> tuple[int, str]:
    """A promise's place in a newest-first search: creation time, then id."""
    return promise.created_at, promise.id


def _paged(key: str, page: list[Any], cursor: str | None) -> dict[str, Any]:
    """A search answer: the records, and the cursor of the next page when there is one."""
    return {key: page} if cursor is None else {key: page, "cursor": cursor}


def _row[V](table: Mapping[str, V], key: str | None) -> V | None:
    """The row ``key`` names; none for a missing key (SQL's NULL matches no row)."""
    return None if key is None else table.get(key)


def _pop[V](table: dict[str, V], key: str | None) -> V | None:
    """Remove and return the row ``key`` names; none for a missing key, as :func:`_row`."""
    return None if key is None else table.pop(key, None)
