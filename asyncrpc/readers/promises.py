"""Promises found by an id pattern, a state and a role, newest first: what `asyncrpc promises`
lists and the dashboard's promise browser pages through.

A pattern is a promise id with ``*`` wildcards (``await-chain-*``, ``*:d*``, ``*``);
without a ``*`` it names one id. The server's search narrows by what it can
(the literal prefix before the first ``*``, and the state when it is ``pending``);
the whole pattern, the state and the order are applied here, on the records, so
the embedded server and resonate-pg give the same answer. A pending promise past
its timeout reads as timed out on both, which is why a settled state is matched
here rather than by the server: resonate-pg's table may still hold it as pending.

A role (:class:`Role`) says what a promise is from its tags: an invocation's root,
an RPC call to a group, a local run, a durable sleep. A page of a long answer ends
with a cursor (:attr:`PromisePage.cursor`) naming its last promise; the next page is
what comes after it, newest first, so promises created meanwhile never shift a page.

:func:`search_promises` (blocking, for the CLI) and :func:`search_promises_async`
(for an event loop, e.g. the dashboard's) share every step but the read.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from asyncrpc.protocol.patterns import WILDCARD, id_pattern
from asyncrpc.protocol.records import PromiseRecord
from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import ORIGIN_TAG, PARENT_TAG, TARGET_TAG, TIMER_TAG

if TYPE_CHECKING:
    from asyncrpc.readers.server_reader import AsyncServerReader, ServerReader

#: How many promises a search shows when no limit is given.
DEFAULT_LIMIT = 50


class StateFilter(StrEnum):
    """The states a search can ask for, as a person names them."""

    PENDING = "pending"
    RESOLVED = "resolved"
    #: Every rejection: the function raised, the promise was canceled, or it timed out.
    REJECTED = "rejected"
    TIMEDOUT = "timedout"
    CANCELED = "canceled"

    @property
    def states(self) -> frozenset[PromiseState]:
        """The protocol states this filter matches."""
        return _STATES[self]


_STATES: dict[StateFilter, frozenset[PromiseState]] = {
    StateFilter.PENDING: frozenset({PromiseState.PENDING}),
    StateFilter.RESOLVED: frozenset({PromiseState.RESOLVED}),
    StateFilter.REJECTED: frozenset(
        {PromiseState.REJECTED, PromiseState.REJECTED_CANCELED, PromiseState.REJECTED_TIMEDOUT}
    ),
    StateFilter.TIMEDOUT: frozenset({PromiseState.REJECTED_TIMEDOUT}),
    StateFilter.CANCELED: frozenset({PromiseState.REJECTED_CANCELED}),
}


class Role(StrEnum):
    """What a promise is, read from its tags."""

    #: An invocation: no parent, or its own origin.
    ROOT = "root"
    #: A call sent to a group (it has a ``resonate:target``).
    RPC = "rpc"
    #: A function run in its caller's process (no target).
    LOCAL = "local"
    #: A durable sleep (``resonate:timer``).
    SLEEP = "sleep"


def role_of(record: PromiseRecord) -> Role:
    """The role of ``record``: a sleep, else a root, else an RPC call or a local run."""
    tags = record.tags
    if tags.get(TIMER_TAG) == "true":
        return Role.SLEEP
    if PARENT_TAG not in tags or tags.get(ORIGIN_TAG) == record.id:
        return Role.ROOT
    return Role.RPC if TARGET_TAG in tags else Role.LOCAL


def role_filter(text: str) -> Role:
    """``text`` as a role (``root``, ``rpc``, ``local``, ``sleep``)."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        valid = ", ".join(role.value for role in Role)
        raise InvalidQuery(f"unknown role {text!r}. Valid roles: {valid}.") from None


class InvalidQuery(ValueError):
    """A pattern, state or limit that cannot be searched for; the message says what is valid."""


def state_filter(text: str) -> StateFilter:
    """``text`` as a filter: its name (``timedout``) or a protocol state (``rejected_timedout``)."""
    wanted = text.strip().lower()
    for option in StateFilter:
        if wanted == option.value or option.states == {wanted}:
            return option
    valid = ", ".join(option.value for option in StateFilter)
    raise InvalidQuery(f"unknown state {text!r}. Valid states: {valid}.")


@dataclass(frozen=True, order=True)
class Cursor:
    """Where a page ended: its last promise's creation time and id (the sort key)."""

    created_at: int
    id: str

    def encode(self) -> str:
        raw = json.dumps([self.created_at, self.id], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """A cursor a page gave; :class:`InvalidQuery` for anything else."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            created_at, promise_id = json.loads(raw)
        except (binascii.Error, ValueError, TypeError):
            raise InvalidQuery(
                f"cursor {text[:40]!r} is not one a page gave: leave it out for the first page."
            ) from None
        if not isinstance(created_at, int) or not isinstance(promise_id, str):
            raise InvalidQuery(f"cursor {text[:40]!r} is not one a page gave.")
        return cls(created_at, promise_id)

    @classmethod
    def of(cls, record: PromiseRecord) -> Cursor:
        return cls(record.created_at, record.id)


@dataclass(frozen=True)
class PromiseQuery:
    """What to look for: ids matching ``pattern``, in ``state`` (any when None), of ``role``
    (any when None), the newest ``limit`` (all when None) after ``after`` (from the newest
    when None)."""

    pattern: str = WILDCARD
    state: StateFilter | None = None
    limit: int | None = DEFAULT_LIMIT
    role: Role | None = None
    after: Cursor | None = None

    def __post_init__(self) -> None:
        if not self.pattern:
            raise InvalidQuery("give a pattern: a promise id, with * for any characters.")
        if self.limit is not None and self.limit < 1:
            raise InvalidQuery(f"the limit {self.limit} must be 1 or more.")

    @property
    def server_tags(self) -> dict[str, str] | None:
        """The tags the server's search can narrow by: a sleep's timer tag."""
        return {TIMER_TAG: "true"} if self.role is Role.SLEEP else None

    @property
    def id_prefix(self) -> str | None:
        """What every matching id starts with (the server's search narrows by it)."""
        return self.pattern.partition(WILDCARD)[0] or None

    @property
    def server_state(self) -> PromiseState | None:
        """The state the server can filter by and agree with :meth:`matches`: pending only.

        A settled state is matched here: resonate-pg's table holds a promise past its
        timeout as pending until its timer loop settles it, though it reads as settled.
        """
        return PromiseState.PENDING if self.state is StateFilter.PENDING else None

    def matches(self, record: PromiseRecord) -> bool:
        return (
            id_pattern(self.pattern).fullmatch(record.id) is not None
            and (self.state is None or record.state in self.state.states)
            and (self.role is None or role_of(record) is self.role)
        )

    def pick(self, records: Iterable[PromiseRecord]) -> PromisePage:
        """The matching records, newest first (then by id), at most ``limit`` of them.

        ``matched`` counts every match, before the cursor as well as after it.
        """
        found = sorted(
            (record for record in records if self.matches(record)),
            key=lambda record: (record.created_at, record.id),
            reverse=True,
        )
        after = self.after
        rest = found if after is None else [r for r in found if Cursor.of(r) < after]
        shown = rest if self.limit is None else rest[: self.limit]
        more = len(shown) < len(rest)
        return PromisePage(
            promises=shown,
            matched=len(found),
            cursor=Cursor.of(shown[-1]).encode() if more and shown else None,
        )


@dataclass(frozen=True)
class PromisePage:
    """What a search shows: the newest matches, how many matched in all, and where the next
    page starts (None on the last page)."""

    promises: list[PromiseRecord]
    matched: int
    cursor: str | None = None

    @property
    def truncated(self) -> bool:
        return self.matched > len(self.promises)


def search_promises(reader: ServerReader, query: PromiseQuery) -> PromisePage:
    """The promises ``query`` asks for, read through ``reader`` (HTTP or resonate-pg)."""
    return query.pick(
        reader.search(tags=query.server_tags, id_prefix=query.id_prefix, state=query.server_state)
    )


async def search_promises_async(reader: AsyncServerReader, query: PromiseQuery) -> PromisePage:
    """:func:`search_promises` for an event loop."""
    return query.pick(
        await reader.search(
            tags=query.server_tags, id_prefix=query.id_prefix, state=query.server_state
        )
    )
