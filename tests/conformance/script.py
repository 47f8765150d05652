"""Scenarios as data: a :class:`Script` records steps, :func:`run` plays them on a peer.

A step is a request at a time, a timer run, or a look at the pushed
messages. Each may carry expectations written from reading resonate.sql
(``expect`` maps a dotted path in the response envelope to a value;
``status`` is short for ``head.status``), so a scenario is checked against
the reference on its own, and the transcript :func:`run` returns is what two
peers are compared on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.conformance.peers import Peer, PushedMessage

#: 2026-01-01T00:00:00Z: scenarios run on a fixed clock starting here (cron needs real dates).
T0 = 1_767_225_600_000
SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
#: The protocol version the SDKs send in every request head.
VERSION = "2026-04-01"


class _AnyString:
    """Matches any string (error data is text whose wording is not part of the protocol)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (str, _AnyString))

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "<any string>"


ANY_STRING: Any = _AnyString()
_MISSING = object()


@dataclass(frozen=True)
class Rpc:
    envelope: dict[str, Any]
    at: int
    expect: dict[str, Any]
    #: Why our server answers this step otherwise, on purpose (docs/protocol.md lists it);
    #: None when both answer alike.
    differs: str | None = None
    #: What our server answers instead (dotted paths, as ``expect``), when ``differs``.
    ours: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Timeouts:
    at: int


@dataclass(frozen=True)
class Messages:
    """Drain pushed messages; ``expect`` lists them as short descriptions (any order)."""

    expect: list[str]


Step = Rpc | Timeouts | Messages


@dataclass
class Script:
    """Builds one scenario's steps; ``now`` is the time the next request is sent at."""

    now: int = T0
    steps: list[Step] = field(default_factory=list)
    _corr: int = 0

    def rpc(
        self,
        kind: str,
        data: dict[str, Any] | None = None,
        /,
        request_head: dict[str, Any] | None = None,
        **expect: Any,
    ) -> None:
        """A request; ``expect`` keys are dotted paths, ``__`` for a dot (``data__promise__state``).

        Without ``request_head`` the head is what the SDKs send: a fresh corrId and the version.
        """
        self._corr += 1
        envelope = {
            "kind": kind,
            "head": request_head or {"corrId": f"c{self._corr}", "version": VERSION},
            "data": data or {},
        }
        self.steps.append(Rpc(envelope, self.now, _paths(expect)))

    def differs(
        self,
        kind: str,
        data: dict[str, Any],
        why: str,
        *,
        reference: dict[str, Any],
        ours: dict[str, Any],
    ) -> None:
        """A request our server answers otherwise on purpose, for the reason ``why``.

        ``reference`` is what resonate.sql answers, ``ours`` what our server does (dotted
        paths as in :meth:`rpc`); the two are not compared with each other.
        """
        self.rpc(kind, data, **reference)
        last = self.steps[-1]
        assert isinstance(last, Rpc)
        self.steps[-1] = Rpc(last.envelope, last.at, last.expect, why, _paths(ours))

    def rejects(self, kind: str, data: dict[str, Any], status: int) -> None:
        """A request the server refuses with ``status`` and a text saying why."""
        self.rpc(kind, data, status=status, data=ANY_STRING)

    def advance(self, ms: int) -> None:
        self.now += ms

    def at(self, when: int) -> None:
        self.now = when

    def timeouts(self) -> None:
        self.steps.append(Timeouts(self.now))

    def messages(self, *expect: str) -> None:
        self.steps.append(Messages(list(expect)))


Scenario = Callable[[Script], None]


def _paths(expect: dict[str, Any]) -> dict[str, Any]:
    """Keyword expectations as dotted paths (``data__promise__state`` is ``data.promise.state``)."""
    return {key.replace("__", "."): value for key, value in expect.items()}


def build(scenario: Scenario) -> list[Step]:
    script = Script()
    scenario(script)
    return script.steps


def addresses(steps: list[Step]) -> list[str]:
    """Every ``poll://`` address a scenario names, in order (where messages can be pushed)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and value.startswith("poll://"):
            found.append(value)

    for step in steps:
        if isinstance(step, Rpc):
            walk(step.envelope)
    return found


def describe(message: PushedMessage) -> str:
    """``execute ID vN -> ADDRESS`` or ``unblock ID STATE -> ADDRESS``."""
    body = message.body
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    if body.get("kind") == "execute":
        task = data.get("task", {})
        return f"execute {task.get('id')} v{task.get('version')} -> {message.address}"
    if body.get("kind") == "unblock":
        promise = data.get("promise", {})
        return f"unblock {promise.get('id')} {promise.get('state')} -> {message.address}"
    return f"{body.get('kind')} -> {message.address}"


def lookup(envelope: Any, path: str) -> Any:
    if path == "status":
        path = "head.status"
    value = envelope
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def without_nulls(value: Any) -> Any:
    """``value`` with every null-valued key left out: a null field and a missing one say the same.

    resonate.sql builds its records with ``jsonb_build_object`` and so writes
    ``"settledAt": null``, but the TypeScript SDK's HTTP client rejects a null
    there. Comparing without nulls lets our server do what the SDK needs while
    matching the reference everywhere else.
    """
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


#: Fields whose values are the client's own, answered as they were sent (nulls included).
ECHOED = frozenset({"tags", "promiseTags"})


def null_paths(value: Any, path: str = "") -> list[str]:
    """The dotted paths of every null in ``value`` the server wrote (not inside tags)."""
    if value is None:
        return [path or "."]
    if isinstance(value, dict):
        return [
            p
            for key, item in value.items()
            if key not in ECHOED
            for p in null_paths(item, f"{path}.{key}")
        ]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in null_paths(item, f"{path}.{i}")]
    return []


def comparable(envelope: Any) -> Any:
    """The response as compared: error text only as text, nulls as absent fields."""
    if not isinstance(envelope, dict):
        return envelope
    head = envelope.get("head")
    status = head.get("status") if isinstance(head, dict) else None
    result = without_nulls(envelope)
    if status not in (200, 300) and isinstance(envelope.get("data"), str):
        result["data"] = ANY_STRING
    data = result.get("data")
    if isinstance(data, dict) and isinstance(data.get("action"), dict):
        result["data"] = {**data, "action": comparable(data["action"])}
    return result


@dataclass
class Observation:
    """What one step showed: a response, or the messages pushed (as bodies).

    ``seen`` is what peers are compared on; ``raw`` is exactly what was received.
    """

    step: int
    what: str
    seen: Any
    failures: list[str]
    raw: Any = None
    #: Why this step's answers differ on purpose (they are then not compared).
    differs: str | None = None


def run(peer: Peer, steps: list[Step], ours: bool = False) -> list[Observation]:
    """Play ``steps`` on ``peer``; each observation lists where it broke an expectation.

    With ``ours``, a step our server answers otherwise on purpose is checked
    against what it is meant to answer instead.
    """
    observations = []
    for index, step in enumerate(steps):
        if isinstance(step, Rpc):
            response = peer.rpc(step.envelope, step.at)
            expect = step.ours if ours and step.differs else step.expect
            failures = [
                f"{path}: expected {want!r}, got {got!r}"
                for path, want in expect.items()
                if (got := lookup(response, path)) != want
            ]
            what = (
                f"{step.envelope['kind']} {json.dumps(step.envelope['data'])} at T0+{step.at - T0}"
            )
            seen = comparable(response)
            observations.append(
                Observation(index, what, seen, failures, response, differs=step.differs)
            )
        elif isinstance(step, Timeouts):
            peer.process_timeouts(step.at)
            observations.append(Observation(index, f"timeouts at T0+{step.at - T0}", None, []))
        else:
            pushed = peer.messages()
            got = sorted(describe(m) for m in pushed)
            failures = (
                []
                if got == sorted(step.expect)
                else [f"messages: expected {sorted(step.expect)}, got {got}"]
            )
            bodies = sorted(
                json.dumps({"address": m.address, "body": without_nulls(m.body)}, sort_keys=True)
                for m in pushed
            )
            raw = [m.body for m in pushed]
            observations.append(Observation(index, "pushed messages", bodies, failures, raw))
    return observations
