"""Durability on SQLite: a command log of what changed the state, compacted into snapshots,
and the settled promises in a table of their own.

The state machine is deterministic: the same requests applied at the same
times give the same state. So the store keeps (1) a snapshot of the state in
flight (pending promises and their tasks, callbacks, listeners, schedules),
(2) the log of every request and timer tick applied since, and (3) every
settled promise as a row of the ``promises`` table (:mod:`.history`), written
with others after the log entry that settled it is committed, and always
before a snapshot that covers that entry (so a row a crash kept from the
table is made again by the replay of its entry). A restart loads the
small snapshot and replays the short log; history stays on disk and is read
when asked for, so neither start-up nor memory grows with it. A request is staged and
committed before its response leaves the server, so whatever a client was
told survives ``kill -9``; requests that arrive in the same turn of the event
loop share one commit (group commit). WAL mode with ``synchronous=NORMAL`` makes a commit
a write to the OS, which a process crash cannot undo (a power cut could lose
the last commits; that is the trade for speed, and what the docs say).

The database records the format of what it holds (``meta.format``): a
snapshot is the machine's records in flight as zlib-compressed JSON (format 4;
formats 2 and 3 held every promise in the snapshot, plain or compressed: they
are upgraded on open, their settled promises moved into the table in one
transaction), a settled promise a row with its record as JSON, a log entry the
request body as it
came in, less the credentials in its heads (``head.auth``: no token is kept on
disk). A database of another format (an older server's, whose state was
the Python SDK's in-memory one) is refused with a message saying so, rather
than half read.

One server writes a database at a time: opening one takes an exclusive lock
on ``DB.lock`` beside the database's real path, symbolic links resolved (so a
second server given a link to the same file finds the same lock), with
``fcntl.flock`` (released by the kernel when the holder dies, so a ``kill -9``
leaves no stale lock), and writes the holder's pid there, so a second server
can name it. The database, its WAL files and the lock file are
created readable by their owner only (0600): they hold every flow's inputs.

The failure rule: nothing that did not reach the disk is acknowledged. A
failed commit raises :class:`CommitFailed` and leaves the store as the disk
has it (the failed entries dropped, no transaction open); the engine then
reads its state back from the disk and refuses changes until :meth:`Store.probe`
finds the disk taking writes again. After a failure the write-ahead log is
checkpointed and truncated, and kept small from then on (:meth:`Store.relieve`):
SQLite's default lets it grow to 4 MB before it is folded into the database,
which a nearly full disk cannot hold. A failed snapshot loses nothing (the log
it would compact is committed), so it is logged and tried again later.

Snapshots bound the log: once it holds more entries than a quarter of the
promises in flight (and at least ``min_log``), the state is written whole and the log
before it deleted, so a restart never replays an ever-growing history.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from asyncrpc.protocol.states import PromiseState
from asyncrpc.server.history import INSERT_PROMISE, History, PromiseRow, Settled
from asyncrpc.server.history import SCHEMA as HISTORY_SCHEMA
from asyncrpc.server.machine import Machine
from asyncrpc.server.protocol import without_credentials
from asyncrpc.server.records import Promise, Schedule, Task, TaskState

#: The format of snapshots and log entries this server writes and reads.
FORMAT = 4
#: Older formats this server upgrades on open: their snapshot holds every promise (format 2's
#: is plain JSON, format 3's compressed), settled ones included.
UPGRADABLE = frozenset({"2", "3"})
#: How long a statement waits for a lock another connection holds (ms; Python's default).
BUSY_TIMEOUT_MS = 5000
#: The SQLite page cache (KiB): the indexes' upper levels stay in memory.
CACHE_KIB = 8192

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    request BLOB            -- the request body; NULL for a timer tick
);
CREATE TABLE IF NOT EXISTS snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,   -- the last log entry the snapshot includes
    state BLOB NOT NULL
);
"""
INSERT_LOG = "INSERT INTO log (seq, at, request) VALUES (?, ?, ?)"
INSERT_SNAPSHOT = "INSERT OR REPLACE INTO snapshot (id, seq, state) VALUES (1, ?, ?)"
TRIM_LOG = "DELETE FROM log WHERE seq IN (SELECT seq FROM log WHERE seq <= ? ORDER BY seq LIMIT ?)"
TRIM_FORGOTTEN = (
    "DELETE FROM forgotten WHERE (id, gone_seq) IN"
    " (SELECT id, gone_seq FROM forgotten WHERE gone_seq <= ? LIMIT ?)"
)
#: A retention batch: its rows move to ``forgotten`` (a replay before it still reads them).
FORGET_ROWS = (
    "INSERT OR REPLACE INTO forgotten (id, gone_seq, settled_seq, task_version, record)"
    " SELECT id, ?, settled_seq, task_version, record FROM promises WHERE id = ?"
)
DELETE_ROW = "DELETE FROM promises WHERE id = ?"
#: Log entries a snapshot covers that are deleted per timer tick once it is written.
TRIM_BATCH = 1000
#: Pages the write-ahead log may hold before it is folded into the database, once a write
#: has failed (SQLite's default is 1000: 4 MB).
SMALL_WAL_PAGES = 64
#: Bytes the write-ahead log file is truncated to after a checkpoint, once a write has failed.
SMALL_WAL_BYTES = 256 * 1024
#: A write that changes nothing, made to learn whether the disk takes writes.
PROBE = "UPDATE meta SET value = value WHERE key = 'format'"


class StoreError(Exception):
    """The database cannot be opened, is another server's, or is not one of ours."""


class CommitFailed(Exception):
    """Staged entries could not be written; the memory state is ahead of the disk."""


#: Opens the SQLite connection (a seam: tests pass one whose writes fail).
Connect = Callable[[str], sqlite3.Connection]


def default_connect(path: str) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def _create_owner_only(path: str) -> None:
    """Create ``path`` empty and readable by its owner only, unless it exists."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))


def _restrict(path: str) -> None:
    """The database and its WAL files: readable by their owner only."""
    for name in (path, f"{path}-wal", f"{path}-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(name, 0o600)


def _max_fd() -> int:
    """One past the highest file descriptor a process may hold (a guess when unlimited)."""
    try:
        limit = int(os.sysconf("SC_OPEN_MAX"))
    except (OSError, ValueError):
        limit = -1
    return limit if limit > 3 else 65536


def _hold(db: sqlite3.Connection) -> bool:
    """Take the database's lock for the connection's life; False when another has it open.

    This process is the database's one writer (:func:`lock_database`): held once, the lock
    spares SQLite seven ``fcntl`` calls per transaction, and the write-ahead log's index
    lives in this process's memory rather than in a shared ``-shm`` file. A database that
    another connection has open (someone reading it with ``sqlite3``) is used as SQLite
    shares it by default, taking its locks per transaction.
    """
    db.execute("PRAGMA locking_mode=EXCLUSIVE")
    db.execute("PRAGMA busy_timeout=0")
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("BEGIN EXCLUSIVE")
        db.execute("COMMIT")
        return True
    except sqlite3.OperationalError as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        if "locked" not in str(exc):
            raise
        db.execute("PRAGMA locking_mode=NORMAL")
        return False
    finally:
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def lock_database(path: str) -> int:
    """Take the one-writer lock of the database at ``path``; the lock's file descriptor.

    The lock file is named after the real path, so every name of the same file
    (a symbolic link to it, or to a directory above it) takes the same lock.
    Raises :class:`StoreError` naming the pid that holds it.
    """
    real = os.path.realpath(path)
    fd = os.open(f"{real}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        named = repr(path) if real == os.path.abspath(path) else f"{path!r} (that is {real!r})"
        raise StoreError(
            f"{named} is in use by another asyncrpc server (pid {holder}); one server "
            "writes a database at a time: stop that one, or pass another --db"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class Snapshot(msgspec.Struct):
    """Everything :class:`Machine` holds that its indexes cannot be rebuilt from."""

    promises: list[Promise]
    tasks: list[Task]
    schedules: list[Schedule]
    #: (awaited promise id, awaiter task id)
    callbacks: list[tuple[str, str]]
    #: (awaited promise id, address)
    listeners: list[tuple[str, str]]
    dispatched: list[str]


@dataclass(frozen=True)
class SnapshotWriter:
    """A forked child encoding the snapshot that covers the log up to ``seq``."""

    pid: int
    seq: int
    #: How many log entries since the last snapshot it covers.
    covered: int
    #: The file the child writes the encoded snapshot to.
    scratch: str


@dataclass(frozen=True)
class LogEntry:
    seq: int
    at: int
    request: bytes | None


class Store:
    """One SQLite database holding a snapshot and the log after it."""

    def __init__(self, path: str, min_log: int = 2000, connect: Connect = default_connect) -> None:
        self.path = path
        self.min_log = min_log
        self._lock: int | None = None
        self._writer: SnapshotWriter | None = None
        #: Log entries up to this seq are covered by a written snapshot and go in batches.
        self._trim_to = 0
        #: The older format being upgraded (see :meth:`finish_upgrade`), or None.
        self.upgrading: str | None = None
        try:
            if path != ":memory:":
                if Path(path).is_dir():
                    raise IsADirectoryError(f"{path!r} is a directory")
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                self._lock = lock_database(path)
                _create_owner_only(path)
            self._db = connect(path)
            #: Whether SQLite holds the database's lock for the store's life (see _hold).
            self.exclusive = path != ":memory:" and _hold(self._db)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            self._db.executescript(SCHEMA + HISTORY_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            self._unlock()
            raise StoreError(
                f"cannot use {path!r} as the server's database ({exc}); "
                "--db takes the path of a SQLite file (created if missing) or :memory:"
            ) from None
        except StoreError:
            self._unlock()
            raise
        self._check_format(path)
        if path != ":memory:":
            _restrict(path)
        self._encoder = msgspec.json.Encoder()
        self._snapshot_decoder = msgspec.json.Decoder(Snapshot)
        self._staged: list[tuple[int, int, bytes | None]] = []
        #: Rows of the promises the staged entries settled.
        self._staged_rows: list[PromiseRow] = []
        #: (seq, id) of the promises the staged retention batches delete.
        self._staged_forgotten: list[tuple[int, str]] = []
        self.history = History(self._db)
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0), COUNT(*) FROM log").fetchone()
        snap = self._db.execute("SELECT seq FROM snapshot WHERE id = 1").fetchone()
        self.last_seq: int = max(row[0], snap[0] if snap else 0)
        self.log_length: int = row[1]

    def _check_format(self, path: str) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if row is None:
            used = self._db.execute(
                "SELECT EXISTS (SELECT 1 FROM log) OR EXISTS (SELECT 1 FROM snapshot)"
            ).fetchone()[0]
            if not used:
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('format', ?)", (str(FORMAT),)
                )
                return
            found = "1 (an older asyncrpc server's)"
        else:
            found = row[0]
            if found == str(FORMAT):
                return
            if found in UPGRADABLE:
                self.upgrading = found
                return
        self.close()
        raise StoreError(
            f"{path!r} holds server state in format {found}; this server reads format {FORMAT}. "
            "Its flows cannot be continued here: move the file away (or delete it) "
            "and start again, or pass another --db"
        )

    # -- writing -------------------------------------------------------------

    def stage(
        self,
        at: int,
        request: bytes | None,
        settled: Sequence[Settled] = (),
        forgotten: Sequence[str] = (),
    ) -> None:
        """Queue one applied request body (or a tick, when None) for the next commit,
        with the promises it settled and those it deleted (a retention batch).

        The body is stored without the credentials its heads carry (the token).
        """
        self.last_seq += 1
        stored = None if request is None else without_credentials(request)
        self._staged.append((self.last_seq, at, stored))
        self.log_length += 1
        seq = self.last_seq
        if settled:
            self._staged_rows.extend([promise.row(seq) for promise in settled])
        if forgotten:
            self._staged_forgotten.extend([(seq, promise_id) for promise_id in forgotten])

    def drop_staged(self) -> None:
        """Forget what waits for the next commit (a read of the disk failed: the state is read
        back from the disk, and nothing staged was acknowledged)."""
        self.last_seq -= len(self._staged)
        self.log_length -= len(self._staged)
        self._staged, self._staged_rows, self._staged_forgotten = [], [], []

    @property
    def staged(self) -> int:
        """How many entries wait for the next commit."""
        return len(self._staged)

    def commit(self) -> None:
        """Write every staged entry in one transaction (group commit); durable on return.

        The rows of the promises the entries settled then wait in the history
        (:meth:`History.defer <asyncrpc.server.history.History.defer>`), to be written with
        others. Raises :class:`CommitFailed` when the write fails: the entries are then in
        no durable place, so nothing they caused may be acknowledged.
        """
        if not self._staged:
            return
        rows, self._staged = self._staged, []
        promises, self._staged_rows = self._staged_rows, []
        forgotten, self._staged_forgotten = self._staged_forgotten, []
        try:
            if len(rows) == 1 and not forgotten:
                self._db.execute(INSERT_LOG, rows[0])  # one statement: its own transaction
            else:
                self._db.execute("BEGIN")
                try:
                    self._db.executemany(INSERT_LOG, rows)
                    if forgotten:
                        self._forget_rows(forgotten)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
        except sqlite3.Error as exc:
            if not self._holds(rows[-1][0]):  # else the commit happened; what failed came after
                self.last_seq -= len(rows)
                self.log_length -= len(rows)
                message = f"writing {len(rows)} log entries to {self.path!r}: {exc}"
                raise CommitFailed(message) from exc
        if promises:
            self.history.defer(promises)

    def _forget_rows(self, forgotten: list[tuple[int, str]]) -> None:
        """Retention's deletions (kept in ``forgotten`` until a snapshot covers them).

        They are rows of the table: retention chooses among the rows written.
        """
        self._db.executemany(FORGET_ROWS, forgotten)
        self._db.executemany(DELETE_ROW, [(promise_id,) for _, promise_id in forgotten])
        self.history.written((), len(forgotten))

    def _holds(self, seq: int) -> bool:
        """Whether the log on disk holds entry ``seq`` (False when that cannot be read)."""
        try:
            return (
                self._db.execute("SELECT 1 FROM log WHERE seq = ?", (seq,)).fetchone() is not None
            )
        except sqlite3.Error:
            return False

    def _rollback(self) -> None:
        """End an open transaction (SQLite may have ended it already when a write failed)."""
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def probe(self) -> None:
        """Write a page and commit it; :class:`CommitFailed` while the disk refuses writes.

        The write-ahead log is folded into the database and truncated first, which
        gives back the room it held.
        """
        self._checkpoint()
        try:
            self._db.execute(PROBE)
        except sqlite3.Error as exc:
            self._rollback()
            raise CommitFailed(f"writing to {self.path!r}: {exc}") from exc

    def relieve(self) -> None:
        """After a failed write: checkpoint and truncate the write-ahead log, and keep it small.

        Best effort: on a full disk the checkpoint may fail too, and is tried again
        by :meth:`probe`.
        """
        with contextlib.suppress(sqlite3.Error):
            self._db.execute(f"PRAGMA wal_autocheckpoint={SMALL_WAL_PAGES}")
            self._db.execute(f"PRAGMA journal_size_limit={SMALL_WAL_BYTES}")
        self._checkpoint()

    def _checkpoint(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def needs_snapshot(self, promise_count: int) -> bool:
        return self.log_length >= max(self.min_log, promise_count // 4)

    def write_snapshot(self, state: Machine) -> None:
        """Store the whole state and drop the log it covers, in one transaction (blocking)."""
        self.wait_for_snapshot()
        self.commit()
        self.history.write()  # the snapshot ends the replay of the log that settled them
        body = self._encode(state)
        self._db.execute("BEGIN")
        try:
            self._db.execute(INSERT_SNAPSHOT, (self.last_seq, body))
            self._db.execute("DELETE FROM log WHERE seq <= ?", (self.last_seq,))
            self._db.execute("DELETE FROM forgotten WHERE gone_seq <= ?", (self.last_seq,))
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self.log_length = 0
        self._trim_to = 0

    # -- snapshots off the event loop ------------------------------------------

    @property
    def snapshotting(self) -> bool:
        """A forked writer is writing a snapshot now."""
        return self._writer is not None

    def begin_snapshot(self, state: Machine) -> None:
        """Encode the snapshot in a forked child, so the server's loop goes on serving.

        ``fork`` gives the child the state exactly as it is at this instant
        (copy on write), which a thread could not: the loop changes records
        in place. The child only encodes and writes a plain file (SQLite must
        not be used across a fork), holding none of the parent's files;
        :meth:`poll_snapshot` reaps it and stores the file in one statement,
        then the log it covers is deleted in small batches. Until then the
        log holds everything: a crash of either process loses nothing.
        """
        self.commit()
        self.history.write()  # the snapshot ends the replay of the log that settled them
        seq, covered = self.last_seq, self.log_length
        scratch = f"{self.path}.snapshot"
        pid = os.fork()
        if pid == 0:  # the child: write, and leave without running any of the parent's cleanup
            code = 1
            try:
                # Hold none of the parent's files: not the database lock, nor the listening
                # socket or connections, which must go when the parent dies, not when this does.
                os.closerange(3, _max_fd())
                fd = os.open(scratch, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(self._encode(state))
                code = 0
            finally:
                os._exit(code)
        self._writer = SnapshotWriter(pid, seq, covered, scratch)

    def poll_snapshot(self) -> bool | None:
        """Store a finished child's snapshot (True; False: it failed); delete a batch of old log.

        None while no child finished.
        """
        self._trim_batch()
        writer = self._writer
        if writer is None:
            return None
        pid, status = os.waitpid(writer.pid, os.WNOHANG)
        if pid == 0:
            return None
        self._writer = None
        try:
            if os.waitstatus_to_exitcode(status) != 0:
                return False
            body = Path(writer.scratch).read_bytes()
            self._db.execute(INSERT_SNAPSHOT, (writer.seq, body))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(writer.scratch)
        self.log_length = max(0, self.log_length - writer.covered)
        self._trim_to = writer.seq
        return True

    def wait_for_snapshot(self) -> None:
        """Wait for a running writer to finish (at shutdown)."""
        if self._writer is not None:
            os.waitpid(self._writer.pid, 0)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._writer.scratch)
            self._writer = None

    def _trim_batch(self) -> None:
        if not self._trim_to:
            return
        deleted = self._db.execute(TRIM_LOG, (self._trim_to, TRIM_BATCH)).rowcount
        deleted += self._db.execute(TRIM_FORGOTTEN, (self._trim_to, TRIM_BATCH)).rowcount
        if deleted < TRIM_BATCH:
            self._trim_to = 0

    def _encode(self, state: Machine) -> bytes:
        """The snapshot of ``state``, compressed (level 1: fast, and JSON shrinks twentyfold)."""
        return zlib.compress(self._encode_plain(state), 1)

    def _encode_plain(self, state: Machine) -> bytes:
        """The state in flight: settled promises and fulfilled tasks are in the table."""
        pending = [p for p in state.promises.values() if p.state is PromiseState.PENDING]
        return self._encoder.encode(
            Snapshot(
                promises=pending,
                tasks=[t for t in state.tasks.values() if t.state is not TaskState.FULFILLED],
                schedules=list(state.schedules.values()),
                callbacks=[
                    (awaited, awaiter)
                    for awaited, awaiters in state.callbacks.items()
                    for awaiter in awaiters
                ],
                listeners=[
                    (awaited, address)
                    for awaited, addresses in state.listeners.items()
                    for address in addresses
                ],
                dispatched=sorted(state.dispatched),
            )
        )

    # -- reading -------------------------------------------------------------

    def load_snapshot(self, state: Machine) -> int:
        """Fill ``state`` from the snapshot; return the log seq it covers (0 if none)."""
        row = self._db.execute("SELECT seq, state FROM snapshot WHERE id = 1").fetchone()
        if row is None:
            return 0
        try:
            body = row[1] if row[1][:1] == b"{" else zlib.decompress(row[1])
            snapshot = self._snapshot_decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError, zlib.error) as exc:
            raise StoreError(
                f"the snapshot in {self.path!r} is corrupt ({exc}); restore the file from a "
                "backup, or move it away to start empty"
            ) from None
        state.promises = {promise.id: promise for promise in snapshot.promises}
        state.tasks = {task.id: task for task in snapshot.tasks}
        state.schedules = {schedule.id: schedule for schedule in snapshot.schedules}
        for awaited, awaiter in snapshot.callbacks:
            state.callbacks[awaited][awaiter] = None
        for awaited, address in snapshot.listeners:
            state.listeners[awaited][address] = None
        state.dispatched = set(snapshot.dispatched)
        state.rebuild()
        return int(row[0])

    def finish_upgrade(self, state: Machine) -> None:
        """Write an older format's state as this one, in one transaction.

        ``state`` is the older database's, recovered whole (every promise in
        memory): its settled promises become rows of the table, the rest a new
        snapshot, and the log it came from is deleted.
        """
        self.commit()
        rows = [
            Settled(promise, _task_version(state, promise.id)).row(self.last_seq)
            for promise in state.promises.values()
            if promise.state is not PromiseState.PENDING
        ]
        body = self._encode(state)
        self._db.execute("BEGIN")
        try:
            self._db.executemany(INSERT_PROMISE, rows)
            self.history.written(rows, 0)
            self._db.execute(INSERT_SNAPSHOT, (self.last_seq, body))
            self._db.execute("DELETE FROM log WHERE seq <= ?", (self.last_seq,))
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'format'", (str(FORMAT),))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self.log_length = 0
        self.upgrading = None

    def import_settled(self, settled: Iterable[Settled], batch: int = 50_000) -> int:
        """Store settled promises directly, many per transaction; how many were stored.

        The bulk path for seeding history (benchmarks, tests): no log entry, as if
        they had settled before everything the log holds. A promise the table
        holds already is replaced.
        """
        count = 0
        rows: list[PromiseRow] = []
        for item in settled:
            rows.append(item.row(0))
            if len(rows) >= batch:
                count += self._import(rows)
                rows = []
        return count + (self._import(rows) if rows else 0)

    def _import(self, rows: list[PromiseRow]) -> int:
        self._db.execute("BEGIN")
        try:
            self._db.executemany(INSERT_PROMISE, rows)
            self.history.written(rows, 0)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return len(rows)

    def log_after(self, seq: int) -> Iterator[LogEntry]:
        cursor = self._db.execute(
            "SELECT seq, at, request FROM log WHERE seq > ? ORDER BY seq", (seq,)
        )
        for entry_seq, at, body in cursor:
            yield LogEntry(entry_seq, at, body)

    def close(self, write_rows: bool = True) -> None:
        """Close the database, with the rows waiting written (unless ``write_rows`` is False:
        a log replay makes them again at the next start, which a failed write leaves to)."""
        self.wait_for_snapshot()
        if write_rows and hasattr(self, "history"):  # not when the open is refused
            with contextlib.suppress(sqlite3.Error):
                self.history.write()
        self._db.close()
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def _task_version(state: Machine, promise_id: str) -> int | None:
    task = state.tasks.get(promise_id)
    return None if task is None else task.version
