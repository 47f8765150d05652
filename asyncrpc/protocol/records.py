"""A durable promise as this project reads it: typed, with its param and value decoded.

The server sends a promise as wire JSON (``{"id", "state", "param", "value",
"tags", "timeoutAt", "createdAt", "settledAt"}``, each value ``{"headers",
"data"}`` with ``data`` base64-encoded JSON). :meth:`PromiseRecord.from_wire`
decodes it once, so nothing past the reader handles wire dicts, and
:meth:`PromiseRecord.to_json` is how every command and page shows one. Values
are decoded to JSON only: an error's pickled payload is never unpickled.
"""

from __future__ import annotations

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

    ``pid`` is the Resonate process id of the worker that holds (or last held) it;
    ``version`` counts its acquisitions, a retry or a resume each adding one.
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
