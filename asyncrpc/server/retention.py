"""Forgetting settled invocations after a while, as resonate.sql's ``gc`` does.

``gc(settled_before, limit)`` deletes, oldest settlement first, up to
``limit`` promises that are settled at or before ``settled_before`` and whose
``resonate:origin`` (the invocation's root) is not pending; with each goes
its task, the callbacks and listeners on it, and the resumes it owed to
other tasks. An invocation therefore goes as a whole once its root has
settled, and never while a step of it could still be read by a run in flight.

The timer loop runs it in bounded batches so a large backlog never stalls
the event loop, and logs each batch like a request (``server.gc``, a kind no
client can send: the machine answers a client's ``server.gc`` with 501, and
only what changed the state is logged), so a restart forgets the same rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import msgspec

from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import BRANCH_TAG, ORIGIN_TAG
from asyncrpc.server.machine import Machine

#: The log's kind for a retention batch.
GC_KIND = "server.gc"
#: How many invocations' promises one batch deletes at most.
GC_BATCH = 1000
#: How often the timer loop looks for settled promises older than the retention (ms; more
#: often when the retention is shorter).
GC_INTERVAL_MS = 30_000

_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"([0-9]{1,6})([smhd])")


class RetentionError(ValueError):
    """A ``--retain`` value that is not a duration."""


def parse_retain(value: str) -> int | None:
    """``--retain``: milliseconds to keep a settled invocation, or None for ``forever``.

    A positive whole number with one unit: ``30s``, ``30m``, ``12h``, ``7d``.
    Zero is refused: a caller reads its result after the invocation settles.
    """
    text = value.strip().lower()
    if text == "forever":
        return None
    match = _DURATION.fullmatch(text) if text.isascii() else None
    if match is None or int(match[1]) == 0:
        raise RetentionError(
            f"--retain must be a positive duration such as 30m, 12h or 7d "
            f"(units s, m, h, d), or 'forever'; got {value!r}"
        )
    return int(match[1]) * _UNITS_MS[match[2]]


def gc_request(settled_before: int, limit: int = GC_BATCH) -> bytes:
    """The log entry of one retention batch."""
    data = {"settledBefore": settled_before, "limit": limit}
    return msgspec.json.encode({"kind": GC_KIND, "head": {}, "data": data})


def collect(state: Machine, settled_before: int, limit: int) -> int:
    """Delete up to ``limit`` settled promises as ``gc`` does; how many went."""
    doomed = sorted(
        (promise.settled_at or 0, promise.id)
        for promise in state.promises.values()
        if promise.state is not PromiseState.PENDING
        and (promise.settled_at or 0) <= settled_before
        and not _origin_pending(state, promise.tags.get(ORIGIN_TAG))
    )[:limit]
    gone = {promise_id for _, promise_id in doomed}
    if not gone:
        return 0
    branches: set[str] = set()
    origins: set[str] = set()
    for promise_id in gone:
        promise = state.promises.pop(promise_id)
        state.tasks.pop(promise_id, None)
        state.dispatched.discard(promise_id)
        state.listeners.pop(promise_id, None)
        for awaiter in state.callbacks.pop(promise_id, {}):
            state.awaiting.get(awaiter, set()).discard(promise_id)
        for awaited in state.awaiting.pop(promise_id, ()):
            state.callbacks.get(awaited, {}).pop(promise_id, None)
        for tag, found in ((BRANCH_TAG, branches), (ORIGIN_TAG, origins)):
            if (value := promise.tags.get(tag)) is not None:
                found.add(value)
    _unindex(state.by_branch, branches, gone)
    _unindex(state.by_origin, origins, gone)
    for task in state.tasks.values():
        if task.resumes:
            task.resumes -= gone
    state.changed = True
    return len(gone)


def _origin_pending(state: Machine, origin: object) -> bool:
    root = state.promises.get(origin) if isinstance(origin, str) else None
    return root is not None and root.state is PromiseState.PENDING


def _unindex(index: dict[str, list[str]], keys: Iterable[object], gone: set[str]) -> None:
    """Drop ``gone`` ids from the lists of ``keys`` (tag values; non-strings were never indexed)."""
    for key in keys:
        if isinstance(key, str) and key in index:
            kept = [item for item in index[key] if item not in gone]
            if kept:
                index[key] = kept
            else:
                del index[key]
