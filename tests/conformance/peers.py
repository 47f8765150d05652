"""The two servers a scenario runs against, behind one :class:`Peer` protocol.

- :class:`ReferencePeer` is Resonate's own server as SQL (resonate.sql) on a
  throwaway Postgres: every request is ``resonate.resonate_rpc(envelope)`` with
  the scenario's time in ``head["resonate:debug_time"]``, timers are
  ``resonate.process_timeouts(now)`` and pushed messages are read (and
  removed) from its ``outbox`` table.
- :class:`EnginePeer` is our server's :class:`~asyncrpc.server.engine.Engine`
  in process, on a clock the scenario sets; pushed messages are drained from
  poll streams connected, before the first request, for every ``poll://``
  address the scenario names.

Both report a pushed message as a :class:`PushedMessage`: the address it was
sent to and the JSON body a worker would receive.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from asyncrpc.server.engine import Engine
from asyncrpc.server.router import Address, Stream
from asyncrpc.server.store import Store

#: The tables resonate.sql keeps state in; emptied between scenarios.
REFERENCE_TABLES = (
    "promises",
    "tasks",
    "task_resumes",
    "callbacks",
    "listeners",
    "schedules",
    "outbox",
)


@dataclass(frozen=True)
class PushedMessage:
    """A message a server pushed: where to (a ``poll://`` address) and the body sent."""

    address: str
    body: dict[str, Any]


class Peer(Protocol):
    """A Resonate server a scenario can drive on a clock it controls."""

    name: str

    def rpc(self, envelope: dict[str, Any], now: int) -> dict[str, Any]:
        """Send one request envelope at time ``now`` (ms); return the response envelope."""
        ...

    def process_timeouts(self, now: int) -> None:
        """Fire every promise timeout, task retry, lease expiry and schedule due at ``now``."""
        ...

    def messages(self) -> list[PushedMessage]:
        """The messages pushed since the last call, each once."""
        ...

    def close(self) -> None: ...


class ReferencePeer:
    """resonate.sql on Postgres; ``conn`` is an autocommit psycopg connection."""

    name = "resonate.sql"

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        tables = ", ".join(f"resonate.{table}" for table in REFERENCE_TABLES)
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY")

    def rpc(self, envelope: dict[str, Any], now: int) -> dict[str, Any]:
        head = {**envelope.get("head", {}), "resonate:debug_time": now}
        request = {**envelope, "head": head}
        row = self.conn.execute(
            "SELECT resonate.resonate_rpc(%s::jsonb)", [json.dumps(request)]
        ).fetchone()
        return row[0]

    def process_timeouts(self, now: int) -> None:
        self.conn.execute("SELECT resonate.process_timeouts(%s::bigint)", [now])

    def messages(self) -> list[PushedMessage]:
        rows = self.conn.execute(
            "DELETE FROM resonate.outbox o RETURNING o.seq, o.address,"
            " resonate._outbox_http_body(o)"
        ).fetchall()
        return [PushedMessage(address, body) for _, address, body in sorted(rows)]

    def close(self) -> None:
        pass


class EnginePeer:
    """Our server's engine in process, on the scenario's clock, with its SQLite store in ``db``."""

    name = "asyncrpc server"

    def __init__(self, db: Path, addresses: list[str]) -> None:
        self.now = 0
        # The streams read like resonate.sql's outbox: nobody acquires because of them, so
        # the router must not give up on them for leaving an execute unacquired.
        self.engine = Engine(Store(str(db)), clock=lambda: self.now, ack_timeout_ms=10**12)
        self.streams: list[tuple[str, Stream]] = []
        for address in dict.fromkeys(addresses):
            parsed = Address.parse(address)
            if parsed is None:
                continue
            pid = parsed.pid or f"{parsed.group}-member"
            self.streams.append((address, self.engine.router.connect(parsed.group, pid)))

    def rpc(self, envelope: dict[str, Any], now: int) -> dict[str, Any]:
        self.now = now
        head = {**envelope.get("head", {}), "resonate:debug_time": now}
        reply = self.engine.handle(json.dumps({**envelope, "head": head}).encode())
        return json.loads(reply.body)

    def process_timeouts(self, now: int) -> None:
        self.now = now
        self.engine.tick()

    def messages(self) -> list[PushedMessage]:
        pushed = []
        for address, stream in self.streams:
            while not stream.queue.empty():
                pushed.append(PushedMessage(address, json.loads(stream.queue.get_nowait().body)))
        return pushed

    def close(self) -> None:
        self.engine.store.close()
