"""The server's engine driven in this process: a clock the test moves, requests, databases.

:class:`Clock` is the engine's clock (milliseconds) that a test advances by
hand, so timers fire without sleeping; :func:`send` hands the engine one
request and decodes its answer. The databases are ones a test cannot get from
the engine of today: one an older server left, and one damaged on the disk.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from asyncrpc.server.engine import Engine
from asyncrpc.server.records import Promise
from asyncrpc.server.store import Store

#: A timeout that never comes.
FAR = 10**15
#: The newest log entry replaced by bytes that are not a request.
DAMAGED_LOG_ROW = "UPDATE log SET request = x'7b6e6f74' WHERE seq = (SELECT MAX(seq) FROM log)"


class Clock:
    """The engine's clock in milliseconds; it moves only when a test sets ``now``."""

    def __init__(self, now: int = 1_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class CountingStore(Store):
    """A store that notes each commit (with its entries) among the replies a test delivers.

    A test sets ``delivered`` to its own list and appends each reply to it; a commit
    appends ``"commit N"`` there, so the list shows which answers left before which commit.
    """

    delivered: list[str]

    def commit(self) -> None:
        if self.staged:
            self.delivered.append(f"commit {self.staged}")
        super().commit()


def envelope(kind: str, **data: Any) -> bytes:
    """A protocol request as the server's ``POST /`` takes it."""
    return msgspec.json.encode({"kind": kind, "head": {"corrId": "c", "version": ""}, "data": data})


def send(engine: Engine, kind: str, **data: Any) -> dict[str, Any]:
    """One request to ``engine``; its decoded answer, whose status matches the reply's."""
    reply = engine.handle(envelope(kind, **data))
    decoded = msgspec.json.decode(reply.body)
    assert decoded["head"]["status"] == reply.status
    return decoded


def promise_of(engine: Engine, promise_id: str) -> Promise:
    """The promise ``promise_id``, in memory or settled on disk; it must exist."""
    found = engine.state.promise(promise_id)
    assert found is not None, f"no promise {promise_id!r}"
    return found


def held(engine: Engine) -> list[str]:
    """The ids of every promise the engine holds: in flight (memory) and settled (disk)."""
    stored = [settled.promise.id for settled in engine.state.history.everything()]
    return sorted([*engine.state.promises, *stored])


def create(promise_id: str) -> bytes:
    """``promise.create`` of a promise with a task for group ``g``, timing out never."""
    return envelope(
        "promise.create", id=promise_id, timeoutAt=FAR, tags={"resonate:target": "poll://any@g"}
    )


def damaged(db: Path, sql: str) -> None:
    """A database with a snapshot and a log, then ``sql`` run on it to damage it."""
    engine = Engine(Store(str(db), min_log=3))
    for i in range(4):
        engine.handle(create(f"p{i}"))
    engine.store.close()
    with sqlite3.connect(db) as connection:
        connection.execute(sql)


def write_older_server_database(path: Path) -> None:
    """A database as an older asyncrpc server left it: a log of requests, no format recorded."""
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE log (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, request BLOB);"
        'INSERT INTO log VALUES (1, 5, \'{"kind": "promise.create"}\');'
    )
    connection.close()
