"""Promises found by an id pattern and a state, newest first: what `asyncrpc promises` lists.

A pattern is a promise id with ``*`` wildcards (``await-chain-*``, ``*:d*``, ``*``);
without a ``*`` it names one id. The server's search narrows by what it can
(the literal prefix before the first ``*``, and the state when it is ``pending``);
the whole pattern, the state and the order are applied here, on the records, so
the embedded server and resonate-pg give the same answer. A pending promise past
its timeout reads as timed out on both, which is why a settled state is matched
here rather than by the server: resonate-pg's table may still hold it as pending.

:func:`search_promises` (blocking, for the CLI) and :func:`search_promises_async`
(for an event loop, e.g. the dashboard's) share every step but the read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from asyncrpc.protocol.records import PromiseRecord
from asyncrpc.protocol.states import PromiseState

if TYPE_CHECKING:
    from asyncrpc.readers.server_reader import AsyncServerReader, ServerReader

#: How many promises a search shows when no limit is given.
DEFAULT_LIMIT = 50
#: The wildcard of a pattern: any run of characters, none included.
WILDCARD = "*"


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


@dataclass(frozen=True)
class PromiseQuery:
    """What to look for: ids matching ``pattern``, in ``state`` (any when None), the newest
    ``limit`` (all when None)."""

    pattern: str = WILDCARD
    state: StateFilter | None = None
    limit: int | None = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        if not self.pattern:
            raise InvalidQuery("give a pattern: a promise id, with * for any characters.")
        if self.limit is not None and self.limit < 1:
            raise InvalidQuery(f"the limit {self.limit} must be 1 or more.")

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
        return _regex(self.pattern).fullmatch(record.id) is not None and (
            self.state is None or record.state in self.state.states
        )

    def pick(self, records: Iterable[PromiseRecord]) -> PromisePage:
        """The matching records, newest first (then by id), at most ``limit`` of them."""
        found = sorted(
            (record for record in records if self.matches(record)),
            key=lambda record: (record.created_at, record.id),
            reverse=True,
        )
        shown = found if self.limit is None else found[: self.limit]
        return PromisePage(promises=shown, matched=len(found))


@dataclass(frozen=True)
class PromisePage:
    """What a search shows: the newest matches, and how many matched in all."""

    promises: list[PromiseRecord]
    matched: int

    @property
    def truncated(self) -> bool:
        return self.matched > len(self.promises)


def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split(WILDCARD)), re.DOTALL)


def search_promises(reader: ServerReader, query: PromiseQuery) -> PromisePage:
    """The promises ``query`` asks for, read through ``reader`` (HTTP or resonate-pg)."""
    return query.pick(reader.search(id_prefix=query.id_prefix, state=query.server_state))


async def search_promises_async(reader: AsyncServerReader, query: PromiseQuery) -> PromisePage:
    """:func:`search_promises` for an event loop."""
    return query.pick(await reader.search(id_prefix=query.id_prefix, state=query.server_state))
