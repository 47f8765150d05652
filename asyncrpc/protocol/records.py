"""A durable promise as this project reads it: typed, with its param and value decoded.

The server sends a promise as wire JSON (``{"id", "state", "param", "value",
"tags", "timeoutAt", "createdAt", "settledAt"}``, each value ``{"headers",
"data"}`` with ``data`` base64-encoded JSON). :meth:`PromiseRecord.from_wire`
decodes it once, so nothing past the reader handles wire dicts, and
:meth:`PromiseRecord.to_json` is how every command and page shows one. Values
are decoded to JSON only: an error's pickled payload is never unpickled.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import (
    TARGET_TAG,
    TIMER_TAG,
)


@functools.cache
def _codec() -> Any:
    """The SDK's codec, imported on first use: `asyncrpc call` needs it only for some flows."""
    from resonate.codec import Codec, NoopEncryptor

    return Codec(NoopEncryptor())


class MalformedRecord(ValueError):
    """A promise in the server's answer lacks what every promise has."""


def decode_value(value: Any) -> Any:
    """A wire ``param`` / ``value`` (``{"headers", "data"}``) as Python; None when empty."""
    if not isinstance(value, Mapping) or value.get("data") is None:
        return None
    from resonate.types import Value

    try:
        return _codec().decode(Value(headers=value.get("headers"), data=value.get("data")))
    except Exception:
        return value.get("data")  # not the SDK's encoding: keep it as the server sent it


def group_of_target(target: str | None) -> str | None:
    """The group of a ``poll://any@GROUP`` or ``poll://uni@GROUP/PID`` address.

    Any scheme: the SDK's in-process server names the same groups ``local://any@GROUP``.
    """
    scheme, sep, rest = (target or "").partition("://")
    _, at, address = rest.partition("@")
    if not scheme or not sep or not at:
        return None
    return address.partition("/")[0] or None


@dataclass(frozen=True)
class PromiseRecord:
    """One durable promise: a step of an invocation, a durable sleep, or the invocation itself."""

    id: str
    state: PromiseState
    #: The durable function it invokes (None for a sleep or a plain promise).
    function: str | None = None
    args: tuple[Any, ...] = ()
    #: The decoded value: the result once resolved, the error (a dict) once rejected.
    value: Any = None
    tags: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0
    settled_at: int | None = None
    #: The whole decoded param: a call's ``{"func", "args", ...}``, or a plain promise's data.
    param: Any = None
    #: When the promise times out (ms since the epoch); None when the server did not say.
    timeout_at: int | None = None

    @classmethod
    def from_wire(cls, data: Any) -> PromiseRecord:
        """Decode one promise of a server answer; :class:`MalformedRecord` if it is not one."""
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise MalformedRecord(f"not a promise record: {data!r}")
        try:
            state = PromiseState(str(data.get("state")))
        except ValueError:
            raise MalformedRecord(f"promise {data['id']!r} has no valid state") from None
        param = decode_value(data.get("param"))
        call = param if isinstance(param, Mapping) else {}
        function = call.get("func") if isinstance(call.get("func"), str) else None
        args = call.get("args")
        tags = data.get("tags")
        created_at, settled_at = data.get("createdAt"), data.get("settledAt")
        timeout_at = data.get("timeoutAt")
        return cls(
            id=data["id"],
            state=state,
            function=function,
            args=tuple(args) if isinstance(args, list | tuple) else (),
            value=None if state is PromiseState.PENDING else decode_value(data.get("value")),
            tags=dict(tags) if isinstance(tags, Mapping) else {},
            created_at=created_at if isinstance(created_at, int) else 0,
            settled_at=settled_at if isinstance(settled_at, int) else None,
            param=param,
            timeout_at=timeout_at if isinstance(timeout_at, int) else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The promise as the CLI's ``--json`` and the dashboard show it: decoded, times in ms.

        ``value`` is the result once resolved, the error's data once rejected; ``error``
        says in words why it did not resolve.
        """
        return {
            "id": self.id,
            "state": str(self.state),
            "function": self.function,
            "group": self.group,
            "target": self.tags.get(TARGET_TAG),
            "param": self.param,
            "value": self.value,
            "error": self.error,
            "tags": dict(self.tags),
            "timeout_at": self.timeout_at,
            "created_at": self.created_at,
            "settled_at": self.settled_at,
        }

    @property
    def settled(self) -> bool:
        return self.state is not PromiseState.PENDING

    @property
    def group(self) -> str | None:
        """The group the promise's task is sent to."""
        return group_of_target(self.tags.get(TARGET_TAG))

    @property
    def is_sleep(self) -> bool:
        """A durable sleep: a timer promise the server settles when it comes due."""
        return self.tags.get(TIMER_TAG) == "true"

    @property
    def is_detached(self) -> bool:
        """A step started detached: the SDK names it ``{origin}:d<hash>``."""
        return self.id.partition(":")[2].startswith("d")

    @property
    def error(self) -> str | None:
        """Why a promise that settled without a value did (None otherwise)."""
        if self.state is PromiseState.REJECTED:
            message = self.value.get("message") if isinstance(self.value, Mapping) else self.value
            return str(message) if message else "the function raised an error"
        if self.state is PromiseState.REJECTED_CANCELED:
            return "the invocation was canceled"
        if self.state is PromiseState.REJECTED_TIMEDOUT:
            return "the invocation timed out"
        return None


@dataclass(frozen=True)
class TaskRecord:
    """A promise's task as ``task.get`` answers it: who holds it, and how often it was taken.

    ``pid`` is the Resonate process id of the worker that holds it;
    ``version`` counts its acquisitions: the first, each resume after it awaited, each
    takeover after a lost lease or a release. The SDK's retries of a function that
    raised run inside one acquisition and never reach the server.
    """

    id: str
    state: str
    version: int = 0
    pid: str | None = None
    resumes: int = 0
    ttl: int | None = None

    @classmethod
    def from_wire(cls, data: Any) -> TaskRecord:
        """Decode a ``task.get`` answer's task; :class:`MalformedRecord` if it is not one."""
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise MalformedRecord(f"not a task record: {data!r}")
        state = data.get("state")
        if not isinstance(state, str):
            raise MalformedRecord(f"task {data['id']!r} has no state")
        version, pid, resumes, ttl = (data.get(key) for key in ("version", "pid", "resumes", "ttl"))
        return cls(
            id=data["id"],
            state=state,
            version=version if isinstance(version, int) else 0,
            pid=pid if isinstance(pid, str) and pid else None,
            resumes=resumes if isinstance(resumes, int) else 0,
            ttl=ttl if isinstance(ttl, int) else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "version": self.version,
            "pid": self.pid,
            "resumes": self.resumes,
            "ttl": self.ttl,
        }


class AcquireCause(enum.StrEnum):
    """Why a task was there to take when a worker acquired it."""

    #: Its promise was created: the first acquisition.
    FIRST = "first"
    #: It had suspended on promises it awaits, and one settled: a resume.
    AWAITED = "awaited"
    #: Its holder's lease ran out (the replica died, hung or lost the server): a takeover.
    LEASE = "lease"
    #: Its holder handed it back (``task.release``: the SDK does on a platform error).
    RELEASE = "release"
    #: It was halted, then continued.
    CONTINUE = "continue"
    #: The server did not see why (its record began after the task went pending).
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class TaskAcquisition:
    """One acquisition of a task, as the embedded server records it (``task.acquisitions``).

    ``version`` is the version the acquisition gave the task, ``pid`` the Resonate process
    id that took it, ``at`` when (ms since the epoch); ``previous`` is the process that
    held it before (the one whose lease ran out or that released it), when known.
    """

    version: int
    pid: str
    at: int
    cause: AcquireCause
    previous: str | None = None

    @classmethod
    def from_wire(cls, data: Any) -> TaskAcquisition:
        """One entry of a ``task.acquisitions`` answer; :class:`MalformedRecord` otherwise."""
        if not isinstance(data, Mapping):
            raise MalformedRecord(f"not an acquisition: {data!r}")
        version, pid, at = data.get("version"), data.get("pid"), data.get("at")
        if not isinstance(version, int) or not isinstance(pid, str) or not isinstance(at, int):
            raise MalformedRecord(f"an acquisition needs version, pid and at: {data!r}")
        try:
            cause = AcquireCause(str(data.get("cause")))
        except ValueError:
            cause = AcquireCause.UNKNOWN
        previous = data.get("previous")
        return cls(version, pid, at, cause, previous if isinstance(previous, str) else None)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "pid": self.pid,
            "at": self.at,
            "cause": str(self.cause),
            "previous": self.previous,
        }


@dataclass(frozen=True)
class ScheduleRecord:
    """A schedule: a cron expression that creates a promise at each of its runs.

    ``promise_id`` is the template of the ids it creates (``{{.id}}`` is the schedule's
    id, ``{{.timestamp}}`` the run's time in ms); ``promise_timeout`` how long each
    created promise has (ms); ``tags`` the tags each gets (``resonate:target`` sends
    it to a group). Times are ms since the epoch.
    """

    id: str
    cron: str
    promise_id: str
    promise_timeout: int
    next_run_at: int
    created_at: int
    last_run_at: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, data: Any) -> ScheduleRecord:
        """Decode one schedule of a server answer; :class:`MalformedRecord` if it is not one."""
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise MalformedRecord(f"not a schedule record: {data!r}")
        cron, template = data.get("cron"), data.get("promiseId")
        timeout, next_run = data.get("promiseTimeout"), data.get("nextRunAt")
        if not isinstance(cron, str) or not isinstance(template, str):
            raise MalformedRecord(f"schedule {data['id']!r} has no cron or promise id")
        if not isinstance(timeout, int) or not isinstance(next_run, int):
            raise MalformedRecord(f"schedule {data['id']!r} has no promise timeout or next run")
        created, last = data.get("createdAt"), data.get("lastRunAt")
        tags = data.get("promiseTags")
        return cls(
            id=data["id"],
            cron=cron,
            promise_id=template,
            promise_timeout=timeout,
            next_run_at=next_run,
            created_at=created if isinstance(created, int) else 0,
            last_run_at=last if isinstance(last, int) else None,
            tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, Mapping) else {},
        )

    @property
    def group(self) -> str | None:
        """The group the promises it creates are sent to (None: plain promises)."""
        return group_of_target(self.tags.get(TARGET_TAG))

    def to_json(self) -> dict[str, Any]:
        """The schedule as `asyncrpc schedules --json` and the dashboard show it; times in ms."""
        return {
            "id": self.id,
            "cron": self.cron,
            "promise_id": self.promise_id,
            "promise_timeout": self.promise_timeout,
            "group": self.group,
            "tags": dict(self.tags),
            "next_run_at": self.next_run_at,
            "last_run_at": self.last_run_at,
            "created_at": self.created_at,
        }
