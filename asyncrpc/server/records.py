"""The server's records: promises, tasks and schedules, and their wire shapes.

Each record is what resonate.sql keeps in one table row; ``to_json`` gives the
record exactly as the protocol shows it (``param`` and ``value`` always an
object of ``headers`` and ``data``, ``settledAt`` left out while pending). A
promise's ``data`` is text (or null): the protocol carries payloads as opaque
strings, so a non-string ``data`` is kept as its JSON text, as Postgres does.
A tag is read as resonate.sql reads it, as text (``tags->>'resonate:timer'``):
the JSON ``true`` and the string ``"true"`` both make a timer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import (
    EXTERNAL_TAG,
    TARGET_TAG,
    TIMER_TAG,
)
from asyncrpc.server import fields

#: How long a pending task waits before its ``execute`` is sent again, and how
#: long a released or expired task waits for a worker (resonate.sql's ``_retry_timeout``).
RETRY_TIMEOUT_MS = 5_000


#: The states a client may settle a promise with (``rejected_timedout`` is the server's own).
SETTLE_STATES = frozenset(
    {PromiseState.RESOLVED, PromiseState.REJECTED, PromiseState.REJECTED_CANCELED}
)


class TaskState(enum.StrEnum):
    PENDING = "pending"
    ACQUIRED = "acquired"
    SUSPENDED = "suspended"
    HALTED = "halted"
    FULFILLED = "fulfilled"


@dataclass(slots=True)
class Value:
    """A promise's ``param`` or ``value``: headers (any JSON, an object by default) and text."""

    headers: Any = field(default_factory=dict)
    data: str | None = None

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"headers": {} if self.headers is None else self.headers}
        if self.data is not None:
            record["data"] = self.data
        return record


@dataclass(slots=True)
class Promise:
    id: str
    state: PromiseState
    param: Value
    value: Value
    tags: dict[str, Any]
    timeout_at: int
    created_at: int
    settled_at: int | None = None

    @property
    def target(self) -> str | None:
        """Where its task's ``execute`` goes (``tags->>'resonate:target'``, when not empty)."""
        return fields.text(self.tags, TARGET_TAG) or None

    @property
    def is_timer(self) -> bool:
        return fields.text(self.tags, TIMER_TAG) == "true"

    @property
    def external(self) -> bool:
        """Driven from outside (a task, a timer, a caller): its timeout is enforced."""
        return (
            self.tags.get(TARGET_TAG) is not None
            or self.is_timer
            or fields.text(self.tags, EXTERNAL_TAG) == "true"
        )

    def timeout_state(self) -> PromiseState:
        """The state a timeout gives: a timer resolves, anything else is rejected."""
        return PromiseState.RESOLVED if self.is_timer else PromiseState.REJECTED_TIMEDOUT

    def timed_out(self, now: int) -> bool:
        """Pending but past its timeout: it reads as settled by the timeout."""
        return self.state is PromiseState.PENDING and self.timeout_at <= now

    def state_at(self, now: int) -> PromiseState:
        return self.timeout_state() if self.timed_out(now) else self.state

    def is_open(self, now: int) -> bool:
        """Pending and not yet past its timeout at ``now``."""
        return self.state is PromiseState.PENDING and self.timeout_at > now

    def to_json(self, now: int | None = None) -> dict[str, Any]:
        """The record as the protocol shows it at ``now`` (None: as stored).

        A pending promise past its timeout reads as timed out even before the
        timer loop settles it, so no answer ever shows a promise that could
        still be settled when it cannot.
        """
        state, settled_at = self.state, self.settled_at
        if now is not None and self.timed_out(now):
            state, settled_at = self.timeout_state(), self.timeout_at
        record = {
            "id": self.id,
            "state": state.value,
            "param": self.param.to_json(),
            "value": self.value.to_json(),
            "tags": self.tags,
            "timeoutAt": self.timeout_at,
            "createdAt": self.created_at,
        }
        if settled_at is not None:
            record["settledAt"] = settled_at
        return record


@dataclass(slots=True)
class Task:
    id: str
    state: TaskState
    version: int = 0
    ttl: int | None = None
    pid: str | None = None
    #: When the timer loop looks at it next (retry while pending, lease while acquired).
    timeout_at: int | None = None
    #: Ids of the settled promises this task has not yet been resumed with.
    resumes: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        return _present(
            {
                "id": self.id,
                "state": self.state.value,
                "version": self.version,
                "resumes": len(self.resumes),
                "ttl": self.ttl,
                "pid": self.pid,
            }
        )


@dataclass(slots=True)
class Schedule:
    id: str
    cron: str
    promise_id: str
    promise_timeout: int
    promise_param: Value
    promise_tags: dict[str, Any]
    created_at: int
    next_run_at: int
    last_run_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        return _present(
            {
                "id": self.id,
                "cron": self.cron,
                "promiseId": self.promise_id,
                "promiseTimeout": self.promise_timeout,
                "promiseParam": self.promise_param.to_json(),
                "promiseTags": self.promise_tags,
                "nextRunAt": self.next_run_at,
                "lastRunAt": self.last_run_at,
                "createdAt": self.created_at,
            }
        )

    def promise_id_at(self, run_at: int) -> str:
        """The id of the promise the run at ``run_at`` creates (``{{.id}}``, ``{{.timestamp}}``)."""
        return self.promise_id.replace("{{.timestamp}}", str(run_at)).replace("{{.id}}", self.id)


def _present(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` without its fields that have no value."""
    return {key: value for key, value in record.items() if value is not None}
