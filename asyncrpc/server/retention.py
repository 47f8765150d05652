"""Forgetting settled invocations after a while, as resonate.sql's ``gc`` does.

``gc(settled_before, limit)`` deletes, oldest settlement first, up to
``limit`` promises that are settled at or before ``settled_before`` and whose
``resonate:origin`` (the invocation's root) is not pending; with each goes
its task, the callbacks and listeners on it, and the resumes it owed to
other tasks. An invocation therefore goes as a whole once its root has
settled, and never while a step of it could still be read by a run in flight.

Settled promises live on disk (:mod:`.history`), so a batch is chosen there,
oldest settlement first by the ``settled_at`` index, and written like a
request: one log entry (``server.gc``, a kind no client can send: the machine
answers a client's ``server.gc`` with 501) naming the ids, committed in the
same transaction as the deletion of their rows, so a restart forgets the
same ones. The timer loop runs batches of :data:`GC_BATCH` back to back while
a backlog remains, yielding to the requests waiting between two batches, so
a large backlog goes quickly and no request waits longer than one batch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec

from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import ORIGIN_TAG
from asyncrpc.server.machine import Machine

#: The log's kind for a retention batch.
GC_KIND = "server.gc"
#: How many promises one batch deletes at most (a batch takes a few milliseconds).
GC_BATCH = 100
#: How many of the oldest candidates a batch looks at, at most: those of an invocation
#: whose root is pending are skipped.
GC_SCAN = 4 * GC_BATCH
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


def gc_request(ids: Sequence[str]) -> bytes:
    """The log entry of one retention batch: the ids it deletes."""
    return msgspec.json.encode({"kind": GC_KIND, "head": {}, "data": {"ids": list(ids)}})


def choose(state: Machine, settled_before: int, limit: int = GC_BATCH) -> list[str]:
    """Up to ``limit`` stored promises ``gc`` deletes, oldest settlement first.

    Only promises on disk: one settled by a request not yet committed is younger.
    """
    chosen: list[str] = []
    for promise_id, origin in state.history.oldest(settled_before, GC_SCAN):
        if not _origin_pending(state, origin):
            chosen.append(promise_id)
            if len(chosen) >= limit:
                break
    return chosen


def collect_in_memory(state: Machine, settled_before: int, limit: int) -> int:
    """Delete up to ``limit`` settled promises held in memory as ``gc`` does; how many went.

    An older format's log entry (``settledBefore``, ``limit``) replayed while that
    database is upgraded, when every promise is in memory.
    """
    doomed = sorted(
        (promise.settled_at or 0, promise.id)
        for promise in state.promises.values()
        if promise.state is not PromiseState.PENDING
        and (promise.settled_at or 0) <= settled_before
        and not _origin_pending(state, promise.tags.get(ORIGIN_TAG))
    )[:limit]
    gone = [promise_id for _, promise_id in doomed]
    if gone:
        state.forget(gone)  # settled: no callbacks, listeners or dispatch of theirs remain
    return len(gone)


def _origin_pending(state: Machine, origin: object) -> bool:
    """The invocation's root is pending (so in memory)."""
    root = state.promises.get(origin) if isinstance(origin, str) else None
    return root is not None and root.state is PromiseState.PENDING
