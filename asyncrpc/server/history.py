"""Settled promises on disk, read on demand: the server's history.

A settled promise never changes again (its task is fulfilled, its callbacks
and listeners are gone), so it need not stay in memory: once the log entry
that settled it is committed, the engine drops it from the machine's memory,
its row joins the rows waiting to be written (:meth:`History.defer`), and
every later read (``promise.get``, a create of an existing id, ``preload``,
``promise.search``, ``task.get``) finds it here. Memory holds what is in
flight, the rows not yet written, and a bounded cache of the most recently
used settled promises, so memory and start-up grow with the work in flight,
not with history.

The rows are written to the ``promises`` table many at a time
(:meth:`History.write`: the engine writes them once :data:`WRITE_BATCH` wait,
at every timer tick, and before a snapshot or a read that needs the table),
not in the transaction of the log entry that settled each: a row is a page
of the table and of each of its six indexes, seven pages to write for one
promise, where the rows of many settled together share their pages (the
ids of one flow sort together). The log entry is what makes a settlement
durable: a row lost in a crash is made again by the log's replay
(:meth:`History.missing`), since a snapshot, which ends the replay of the
log before it, is written only once every row it covers is in the table.

The table's columns beside the record are what reads select by, each with an
index ordered by id (the search's order): ``origin``, ``branch`` and ``target``
(the tags the call graph, ``preload`` and the dashboard read by; ``target`` also
by creation time, for the dashboard's newest-first search), ``state``,
and ``settled_at`` (retention takes the oldest first). ``settled_seq`` is the
log entry that settled the promise; ``task_version`` its task's version (NULL:
no task), which is all a fulfilled task has left to say.

Recovery replays the log after the snapshot, and a replayed request must see
the history as it was when the request first ran: so during replay a row is
visible only if it was settled by the snapshot (``settled_seq`` up to the
snapshot's seq); later ones are in memory, settled again by the replay. Rows
retention deleted after the snapshot wait in the ``forgotten`` table, visible
to a replayed request that came before their deletion, until a snapshot
covers it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import BRANCH_TAG, ORIGIN_TAG, TARGET_TAG
from asyncrpc.server.records import Promise, Task, TaskState

SCHEMA = """
CREATE TABLE IF NOT EXISTS promises (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    origin TEXT,            -- the resonate:origin tag, when a string
    branch TEXT,            -- the resonate:branch tag, when a string
    target TEXT,            -- the resonate:target tag, when a string
    created_at INTEGER NOT NULL,
    settled_at INTEGER NOT NULL,
    settled_seq INTEGER NOT NULL,
    task_version INTEGER,
    record BLOB NOT NULL    -- the promise as JSON
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS promises_origin ON promises (origin) WHERE origin IS NOT NULL;
CREATE INDEX IF NOT EXISTS promises_branch ON promises (branch) WHERE branch IS NOT NULL;
CREATE INDEX IF NOT EXISTS promises_target ON promises (target) WHERE target IS NOT NULL;
CREATE INDEX IF NOT EXISTS promises_target_newest ON promises (target, created_at)
    WHERE target IS NOT NULL;
CREATE INDEX IF NOT EXISTS promises_state ON promises (state);
CREATE INDEX IF NOT EXISTS promises_settled ON promises (settled_at);
CREATE TABLE IF NOT EXISTS forgotten (
    id TEXT NOT NULL,
    gone_seq INTEGER NOT NULL,  -- the retention batch (log entry) that deleted it
    settled_seq INTEGER NOT NULL,
    task_version INTEGER,
    record BLOB NOT NULL,
    PRIMARY KEY (id, gone_seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS forgotten_gone ON forgotten (gone_seq);
"""
INSERT_PROMISE = (
    "INSERT OR REPLACE INTO promises (id, state, origin, branch, target, created_at, settled_at,"
    " settled_seq, task_version, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: How many settled promises the cache keeps (the most recently used).
CACHE_SIZE = 4096
#: How many rows wait to be written before the engine writes them (:meth:`History.write`).
WRITE_BATCH = 64
#: How many branches :meth:`History.branch` remembers as having no rows on disk.
NO_ROWS_SIZE = 4096
#: Rows a search reads from the disk at a time while it filters by tags the table has no
#: column for.
SCAN_CHUNK = 500

#: One row of the ``promises`` table, as :data:`INSERT_PROMISE` takes it.
PromiseRow = tuple[str, str, Any, Any, Any, int, int, int, int | None, bytes]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Promise)


@dataclass(frozen=True, slots=True)
class Settled:
    """A promise that settled, and its task's version (None: it has no task)."""

    promise: Promise
    task_version: int | None

    def row(self, seq: int) -> PromiseRow:
        """Its row in the ``promises`` table, settled by log entry ``seq``."""
        promise = self.promise
        tags = promise.tags
        return (
            promise.id,
            promise.state.value,
            _text(tags.get(ORIGIN_TAG)),
            _text(tags.get(BRANCH_TAG)),
            _text(tags.get(TARGET_TAG)),
            promise.created_at,
            promise.settled_at or 0,
            seq,
            self.task_version,
            _encoder.encode(promise),
        )


@dataclass(frozen=True)
class SearchFilter:
    """What ``promise.search`` asks for, as the disk can narrow by it."""

    prefix: str
    cursor: str
    tags: Mapping[str, Any]
    state: str | None


class History:
    """Reads of the settled promises on disk, with a cache of the recent ones."""

    def __init__(self, db: sqlite3.Connection, cache_size: int = CACHE_SIZE) -> None:
        self._db = db
        self._cache: dict[str, Settled] = {}
        #: Rows of settled promises (their log entries committed) not yet in the table, by id,
        #: and the branches they name (:meth:`branch` reads them with the table's).
        self._unwritten: dict[str, PromiseRow] = {}
        self._unwritten_branches: set[str] = set()
        self._cache_size = cache_size
        #: While recovering: the snapshot's seq (rows settled after it are invisible) and the
        #: log entry being replayed (rows retention deleted after it are still visible).
        self._horizon: int | None = None
        self._position = 0
        #: How many rows the table holds: kept in ``meta.settled`` in the transaction that
        #: writes them, so no start-up counts a large table.
        self._count = 0
        #: Branches with no rows on disk, as a read found them: ``preload`` asks for a
        #: branch at every acquire of its task, and most branches (an ``rpc``'s own)
        #: never have a row until their root settles. A write of a row of the branch
        #: (:meth:`written`) forgets it; a deletion leaves it true.
        self._no_rows: dict[str, None] = {}
        self.reload()

    def reload(self) -> None:
        """Read the count from the disk again and empty the cache (after a failed commit,
        whose rows and count never reached it)."""
        db = self._db
        self._cache.clear()
        self._no_rows.clear()
        self._unwritten.clear()
        self._unwritten_branches.clear()
        self._horizon = None
        row = db.execute("SELECT value FROM meta WHERE key = 'settled'").fetchone()
        if row is None:
            count = db.execute("SELECT COUNT(*) FROM promises").fetchone()[0]
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('settled', ?)", (count,))
            row = (count,)
        self._count = int(row[0])

    # -- recovery ------------------------------------------------------------

    def replaying(self, horizon: int) -> None:
        """Show the history as of the snapshot at ``horizon`` while the log is replayed."""
        self._horizon = horizon
        self._position = horizon
        self._cache.clear()
        self._no_rows.clear()

    def at(self, seq: int) -> None:
        """The log entry being replayed."""
        self._position = seq

    def replayed(self) -> None:
        """Recovery is done: every row is visible again."""
        self._horizon = None

    # -- rows not yet written ----------------------------------------------------

    def defer(self, rows: Iterable[PromiseRow]) -> None:
        """Keep these rows (of settled promises whose log entries are committed) until
        :meth:`write`; reads find them meanwhile."""
        unwritten, branches = self._unwritten, self._unwritten_branches
        for row in rows:
            unwritten[row[0]] = row
            if row[3] is not None:
                branches.add(row[3])

    @property
    def unwritten(self) -> int:
        """How many rows wait to be written."""
        return len(self._unwritten)

    def write(self) -> None:
        """Write the rows waiting, in one transaction (nothing when none wait).

        A failed write leaves them waiting, and raises the :class:`sqlite3.Error`.
        """
        if not self._unwritten:
            return
        rows = list(self._unwritten.values())
        count = self._count
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany(INSERT_PROMISE, rows)
            self.written(rows, 0)
            db.execute("COMMIT")
        except BaseException:
            self._count = count
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise
        self._unwritten.clear()
        self._unwritten_branches.clear()

    def missing(self, rows: Iterable[PromiseRow]) -> list[PromiseRow]:
        """Of ``rows``, those the table does not hold (after a replay: the rows of the
        promises it settled again that a crash or a failed write kept from the table)."""
        query = "SELECT 1 FROM promises WHERE id = ?"
        return [row for row in rows if self._db.execute(query, (row[0],)).fetchone() is None]

    # -- the cache -------------------------------------------------------------

    def remember(self, settled: Settled) -> None:
        """Keep a promise just moved out of memory (it is on disk) in the cache."""
        if self._horizon is not None:
            return
        cache = self._cache
        cache.pop(settled.promise.id, None)
        cache[settled.promise.id] = settled
        if len(cache) > self._cache_size:
            del cache[next(iter(cache))]

    def forget(self, ids: Iterable[str]) -> None:
        for promise_id in ids:
            self._cache.pop(promise_id, None)

    # -- reads -----------------------------------------------------------------

    def get(self, promise_id: str) -> Settled | None:
        """The settled promise ``promise_id`` (with its task's version), or None."""
        cache = self._cache
        found = cache.pop(promise_id, None)
        if found is not None:
            cache[promise_id] = found  # the most recently used goes last
            return found
        unwritten = self._unwritten.get(promise_id)
        if unwritten is not None:
            settled = Settled(_decoder.decode(unwritten[9]), unwritten[8])
            self.remember(settled)
            return settled
        if self._horizon is None:
            row = self._db.execute(
                "SELECT record, task_version FROM promises WHERE id = ?", (promise_id,)
            ).fetchone()
        else:
            row = self._db.execute(
                "SELECT record, task_version FROM promises WHERE id = ? AND settled_seq <= ?"
                " UNION ALL SELECT record, task_version FROM forgotten"
                " WHERE id = ? AND settled_seq <= ? AND gone_seq > ? LIMIT 1",
                (promise_id, self._horizon, promise_id, self._horizon, self._position),
            ).fetchone()
        if row is None:
            return None
        settled = Settled(_decoder.decode(row[0]), row[1])
        self.remember(settled)
        return settled

    def promise(self, promise_id: str) -> Promise | None:
        found = self.get(promise_id)
        return None if found is None else found.promise

    def task(self, task_id: str) -> Task | None:
        """The fulfilled task of a settled promise, or None."""
        found = self.get(task_id)
        if found is None or found.task_version is None:
            return None
        return Task(id=task_id, state=TaskState.FULFILLED, version=found.task_version)

    def branch(self, branch: str) -> list[Promise]:
        """The settled promises of ``branch`` (``preload``), in id order."""
        stored = self._branch_in_table(branch)
        if branch not in self._unwritten_branches:
            return stored
        unwritten = [_decoder.decode(r[9]) for r in self._unwritten.values() if r[3] == branch]
        return sorted([*stored, *unwritten], key=_promise_id)

    def _branch_in_table(self, branch: str) -> list[Promise]:
        if branch in self._no_rows:
            return []
        rows = self._db.execute(
            "SELECT record FROM promises WHERE branch = ? ORDER BY id", (branch,)
        ).fetchall()
        if not rows:
            no_rows = self._no_rows
            no_rows[branch] = None
            if len(no_rows) > NO_ROWS_SIZE:
                del no_rows[next(iter(no_rows))]
        return [_decoder.decode(row[0]) for row in rows]

    def search(self, wanted: SearchFilter, limit: int, skip: Container[str]) -> list[Promise]:
        """Up to ``limit`` settled promises matching ``wanted`` after its cursor, by id.

        The indexed columns narrow the read; tags without a column are matched on
        the records. Ids in ``skip`` (those memory holds) are left out.
        """
        found = self._search_table(wanted, limit, skip)
        unwritten = self._unwritten_matching(wanted, skip)
        if not unwritten:
            return found
        after = [p for p in unwritten if not wanted.cursor or p.id > wanted.cursor]
        return sorted([*found, *after], key=_promise_id)[:limit]

    def _search_table(
        self, wanted: SearchFilter, limit: int, skip: Container[str]
    ) -> list[Promise]:
        narrowed = _narrowing(wanted)
        if narrowed is None:
            return []
        where, params = narrowed
        if wanted.prefix:
            where.append("id >= ?")
            params.append(wanted.prefix)
        found: list[Promise] = []
        # Only tags without a column make rows that do not match: read more per chunk then.
        covered = set(wanted.tags) <= {ORIGIN_TAG, TARGET_TAG, BRANCH_TAG}
        chunk = limit + 1 if covered else max(limit + 1, SCAN_CHUNK)
        # The same order while the target is fixed, but said so SQLite walks the target's index
        # in id order rather than the newest-first one, which would sort every match.
        order = "target, id" if isinstance(wanted.tags.get(TARGET_TAG), str) else "id"
        rows = self._rows("id, record", where, params, wanted.cursor, chunk, order)
        for promise_id, record in rows:
            if not promise_id.startswith(wanted.prefix):
                break  # in id order: no later id has the prefix
            if promise_id in skip:
                continue
            promise = _decoder.decode(record)
            if all(promise.tags.get(key) == value for key, value in wanted.tags.items()):
                found.append(promise)
                if len(found) >= limit:
                    break
        return found

    def newest(self, wanted: SearchFilter, limit: int, skip: Container[str]) -> list[Promise]:
        """Up to ``limit`` settled promises matching ``wanted``, newest created first.

        Read newest first by an index where the target narrows it, so the cost is
        that of the rows looked at, not of the rows stored.
        """
        found = self._newest_in_table(wanted, limit, skip)
        unwritten = self._unwritten_matching(wanted, skip)
        if not unwritten:
            return found
        return sorted([*found, *unwritten], key=_created_and_id, reverse=True)[:limit]

    def _newest_in_table(
        self, wanted: SearchFilter, limit: int, skip: Container[str]
    ) -> list[Promise]:
        narrowed = _narrowing(wanted)
        if narrowed is None:
            return []
        where, params = narrowed
        covered = set(wanted.tags) <= {ORIGIN_TAG, TARGET_TAG, BRANCH_TAG} and not wanted.prefix
        chunk = limit if covered else max(limit, SCAN_CHUNK)
        found: list[Promise] = []
        before: tuple[int, str] | None = None
        while True:
            conditions = where if before is None else [*where, "(created_at, id) < (?, ?)"]
            values = params if before is None else [*params, *before]
            clause = f" WHERE {' AND '.join(conditions)}" if conditions else ""
            rows = self._db.execute(
                f"SELECT id, created_at, record FROM promises{clause}"
                " ORDER BY created_at DESC, id DESC LIMIT ?",
                (*values, chunk),
            ).fetchall()
            for promise_id, _, record in rows:
                if promise_id in skip or not promise_id.startswith(wanted.prefix):
                    continue
                promise = _decoder.decode(record)
                if all(promise.tags.get(key) == value for key, value in wanted.tags.items()):
                    found.append(promise)
                    if len(found) >= limit:
                        return found
            if len(rows) < chunk:
                return found
            before = (rows[-1][1], rows[-1][0])

    def fulfilled_tasks(self, cursor: str, limit: int, skip: Container[str]) -> list[Task]:
        """Up to ``limit`` fulfilled tasks of settled promises after ``cursor``, by id."""
        found = self._fulfilled_in_table(cursor, limit, skip)
        unwritten = [
            Task(id=row[0], state=TaskState.FULFILLED, version=row[8])
            for row in self._unwritten.values()
            if row[8] is not None and row[0] > cursor and row[0] not in skip
        ]
        if not unwritten:
            return found
        return sorted([*found, *unwritten], key=_task_id)[:limit]

    def _fulfilled_in_table(self, cursor: str, limit: int, skip: Container[str]) -> list[Task]:
        found: list[Task] = []
        rows = self._rows(
            "id, task_version", ["task_version IS NOT NULL"], [], cursor, max(limit, SCAN_CHUNK)
        )
        for task_id, version in rows:
            if task_id not in skip:
                found.append(Task(id=task_id, state=TaskState.FULFILLED, version=version))
                if len(found) >= limit:
                    break
        return found

    def _rows(
        self,
        columns: str,
        where: list[str],
        params: list[Any],
        cursor: str,
        chunk: int,
        order: str = "id",
    ) -> Iterator[Any]:
        """The rows matching ``where`` with ids after ``cursor``, by id, ``chunk`` at a time.

        ``order`` is how the ORDER BY says "by id" (columns ``where`` fixes may come first).
        """
        after: str | None = cursor or None
        while True:
            conditions = where if after is None else [*where, "id > ?"]
            values = params if after is None else [*params, after]
            clause = f" WHERE {' AND '.join(conditions)}" if conditions else ""
            rows = self._db.execute(
                f"SELECT {columns} FROM promises{clause} ORDER BY {order} LIMIT ?",
                (*values, chunk),
            ).fetchall()
            yield from rows
            if len(rows) < chunk:
                return
            after = rows[-1][0]

    def oldest(self, settled_before: int, limit: int) -> Iterator[tuple[str, Any]]:
        """``(id, origin)`` of settled promises, oldest settlement first, up to ``limit``.

        Only the table's: retention deletes rows, and the engine writes the rows waiting
        before it runs.
        """
        yield from self._db.execute(
            "SELECT id, origin FROM promises WHERE settled_at <= ? ORDER BY settled_at, id LIMIT ?",
            (settled_before, limit),
        )

    def count(self) -> int:
        """How many settled promises are stored (the rows waiting to be written included)."""
        return self._count + len(self._unwritten)

    def written(self, added: Sequence[PromiseRow], deleted: int) -> None:
        """Count the rows ``added`` and ``deleted`` deleted, in the transaction doing it."""
        if self._no_rows:
            for row in added:
                self._no_rows.pop(row[3], None)  # the row's branch
        change = len(added) - deleted
        if change:
            self._db.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = 'settled'",
                (change,),
            )
            self._count += change

    def count_by_state(self) -> dict[str, int]:
        rows = self._db.execute("SELECT state, COUNT(*) FROM promises GROUP BY state")
        counts = {state: count for state, count in rows}
        for row in self._unwritten.values():
            counts[row[1]] = counts.get(row[1], 0) + 1
        return counts

    def fulfilled_count(self) -> int:
        """How many stored settled promises have a (fulfilled) task."""
        (count,) = self._db.execute("SELECT COUNT(task_version) FROM promises").fetchone()
        return int(count) + sum(1 for row in self._unwritten.values() if row[8] is not None)

    def everything(self) -> Iterator[Settled]:
        """Every stored settled promise, by id (for tests and checks; reads the whole table)."""
        rows = self._db.execute("SELECT id, record, task_version FROM promises").fetchall()
        stored = {promise_id: (record, version) for promise_id, record, version in rows}
        for row in self._unwritten.values():
            stored[row[0]] = (row[9], row[8])
        for promise_id in sorted(stored):
            record, version = stored[promise_id]
            yield Settled(_decoder.decode(record), version)

    def _unwritten_matching(self, wanted: SearchFilter, skip: Container[str]) -> list[Promise]:
        """The promises of the rows waiting that a read of the table for ``wanted`` would
        find, were they written (the cursor aside)."""
        if not self._unwritten or _narrowing(wanted) is None:
            return []
        found = []
        for row in self._unwritten.values():
            if row[0] in skip or not row[0].startswith(wanted.prefix):
                continue
            if wanted.state is not None and row[1] != wanted.state:
                continue
            promise = _decoder.decode(row[9])
            if all(promise.tags.get(key) == value for key, value in wanted.tags.items()):
                found.append(promise)
        return found


def _promise_id(promise: Promise) -> str:
    return promise.id


def _task_id(task: Task) -> str:
    return task.id


def _created_and_id(promise: Promise) -> tuple[int, str]:
    """The order of :meth:`History.newest`, reversed: created first, then by id."""
    return (promise.created_at, promise.id)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _narrowing(wanted: SearchFilter) -> tuple[list[str], list[Any]] | None:
    """The indexed columns' conditions for ``wanted``; None when no stored promise can match.

    Every pending promise is in memory, and a tag value that is not text matches no
    stored promise (its column is text).
    """
    if wanted.state == PromiseState.PENDING:
        return None
    where: list[str] = []
    params: list[Any] = []
    for tag, column in ((ORIGIN_TAG, "origin"), (TARGET_TAG, "target"), (BRANCH_TAG, "branch")):
        value = wanted.tags.get(tag)
        if isinstance(value, str):
            where.append(f"{column} = ?")
            params.append(value)
        elif tag in wanted.tags:
            return None
    if wanted.state is not None:
        where.append("state = ?")
        params.append(wanted.state)
    return where, params
