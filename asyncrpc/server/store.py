"""Durability on SQLite: a command log of what changed the state, compacted into snapshots.

The state machine is deterministic: the same requests applied at the same
times give the same state. So the store keeps (1) a snapshot of the whole
state and (2) the log of every request and timer tick applied since. A restart
loads the snapshot and replays the short log. A request is staged and
committed before its response leaves the server, so whatever a client was
told survives ``kill -9``; requests that arrive in the same turn of the event
loop share one commit (group commit). WAL mode with ``synchronous=NORMAL`` makes a commit
a write to the OS, which a process crash cannot undo (a power cut could lose
the last commits; that is the trade for speed, and what the docs say).

Snapshots bound the log: once it holds more entries than a quarter of the
promises (and at least ``min_log``), the state is written whole and the log
before it deleted, so a restart never replays an ever-growing history.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from resonate.connections.local import (
    DurablePromise,
    PTimeout,
    ScheduleStub,
    Task,
    TTimeout,
)

from asyncrpc.server.state import IndexedServerState

SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    request BLOB            -- the flat request; NULL for a timer tick
);
CREATE TABLE IF NOT EXISTS snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,   -- the last log entry the snapshot includes
    state BLOB NOT NULL
);
"""
INSERT_LOG = "INSERT INTO log (seq, at, request) VALUES (?, ?, ?)"


class StoreError(Exception):
    """The database cannot be opened or is not one of ours."""


class Snapshot(msgspec.Struct):
    """Everything :class:`IndexedServerState` holds, in a form msgspec can encode."""

    promises: list[DurablePromise]
    tasks: list[Task]
    schedules: list[ScheduleStub]
    p_timeouts: list[PTimeout]
    t_timeouts: list[TTimeout]


@dataclass(frozen=True)
class LogEntry:
    seq: int
    at: int
    request: dict[str, Any] | None


class Store:
    """One SQLite database holding a snapshot and the log after it."""

    def __init__(self, path: str, min_log: int = 2000) -> None:
        self.path = path
        self.min_log = min_log
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot use {path!r} as the server's database ({exc}); "
                "--db takes the path of a SQLite file (created if missing) or :memory:"
            ) from None
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder()
        self._snapshot_decoder = msgspec.json.Decoder(Snapshot)
        self._staged: list[tuple[int, int, bytes | None]] = []
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0), COUNT(*) FROM log").fetchone()
        snap = self._db.execute("SELECT seq FROM snapshot WHERE id = 1").fetchone()
        self.last_seq: int = max(row[0], snap[0] if snap else 0)
        self.log_length: int = row[1]

    # -- writing -------------------------------------------------------------

    def stage(self, at: int, request: dict[str, Any] | None) -> None:
        """Queue one applied request (or a tick, when ``request`` is None) for the next commit."""
        self.last_seq += 1
        body = self._encoder.encode(request) if request is not None else None
        self._staged.append((self.last_seq, at, body))
        self.log_length += 1

    @property
    def staged(self) -> int:
        """How many entries wait for the next commit."""
        return len(self._staged)

    def commit(self) -> None:
        """Write every staged entry in one transaction (group commit); durable on return."""
        if not self._staged:
            return
        rows, self._staged = self._staged, []
        if len(rows) == 1:  # one statement in autocommit mode is its own transaction
            self._db.execute(INSERT_LOG, rows[0])
            return
        self._db.execute("BEGIN")
        try:
            self._db.executemany(INSERT_LOG, rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def needs_snapshot(self, promise_count: int) -> bool:
        return self.log_length >= max(self.min_log, promise_count // 4)

    def write_snapshot(self, state: IndexedServerState) -> None:
        """Store the whole state and drop the log it covers, in one transaction."""
        self.commit()
        body = self._encoder.encode(
            Snapshot(
                promises=list(state.promises.values()),
                tasks=list(state.tasks.values()),
                schedules=list(state.schedules.values()),
                p_timeouts=state.p_timeouts,
                t_timeouts=state.t_timeouts,
            )
        )
        self._db.execute("BEGIN")
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO snapshot (id, seq, state) VALUES (1, ?, ?)",
                (self.last_seq, body),
            )
            self._db.execute("DELETE FROM log WHERE seq <= ?", (self.last_seq,))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self.log_length = 0

    # -- reading -------------------------------------------------------------

    def load_snapshot(self, state: IndexedServerState) -> int:
        """Fill ``state`` from the snapshot; return the log seq it covers (0 if none)."""
        row = self._db.execute("SELECT seq, state FROM snapshot WHERE id = 1").fetchone()
        if row is None:
            return 0
        snapshot = self._snapshot_decoder.decode(row[1])
        for promise in snapshot.promises:
            state.promises[promise.id] = promise
        state.tasks.update((task.id, task) for task in snapshot.tasks)
        state.schedules.update((stub.id, stub) for stub in snapshot.schedules)
        state.p_timeouts = snapshot.p_timeouts
        state.t_timeouts = snapshot.t_timeouts
        state.rebuild_indexes()
        return row[0]

    def log_after(self, seq: int) -> Iterator[LogEntry]:
        cursor = self._db.execute(
            "SELECT seq, at, request FROM log WHERE seq > ? ORDER BY seq", (seq,)
        )
        for entry_seq, at, body in cursor:
            yield LogEntry(entry_seq, at, self._decoder.decode(body) if body is not None else None)

    def close(self) -> None:
        self._db.close()
