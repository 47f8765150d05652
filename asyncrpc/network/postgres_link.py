"""A process's one connection to a resonate-pg database: requests and messages both.

With resonate-pg the server is a Postgres database: a request is ``SELECT
resonate.resonate_rpc(...)`` and the messages for a process are outbox rows it
drains, woken by ``NOTIFY`` or a short tick, so the connector ``resonate-pg``
(:class:`PostgresConnection`) is at once the SDK's network and its message
source. :class:`PostgresLink` keeps that connector and adds what a process of
this project needs from any connection to its server:

- ``connected`` and ``on_first_connect``, as the HTTP poll stream has them: a
  node prints its ready line, and the gateway's health check passes, once a
  drain of its messages has gone through;
- a request that cannot reach the database (Postgres restarting, a connection
  the restart broke) is retried with a backoff while the process runs, as the
  HTTP connection retries an unreachable server, instead of failing the step;
- the timers (``resonate.process_timeouts()``) are driven again once the
  database is back: the connector stops driving them after its first failure,
  which is right for a role that may not call them and wrong for a database
  that was only down for a moment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from resonate.error import ConnectorError
from resonate.retry import ExponentialBackoff
from resonate_pg import PostgresConnection, PsycopgSessions
from resonate_pg.connection import PROCESS_TIMEOUTS_SQL

log = logging.getLogger(__name__)

#: Database connections one process's pool may hold. Eleven processes share
#: one Postgres, whose default limit is 100 connections.
POOL_SIZE = 6


class PostgresLink(PostgresConnection):
    """resonate-pg's connector for one process, saying whether it reaches the database."""

    def __init__(
        self,
        dsn: str,
        *,
        pid: str,
        group: str,
        backoff: ExponentialBackoff,
        on_first_connect: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(pid=pid, group=group, sessions=PsycopgSessions(dsn, max_size=POOL_SIZE))
        self.connected = asyncio.Event()
        self._backoff = backoff
        self._on_first_connect = on_first_connect

    async def _drain(self) -> None:
        try:
            await super()._drain()
        except Exception:
            self.connected.clear()
            raise
        self.connected.set()
        if self._on_first_connect is not None:
            on_first_connect, self._on_first_connect = self._on_first_connect, None
            on_first_connect()

    async def _fire_timers(self) -> None:
        """Fire due timers; give up on them only when this role may not (pg_cron's job then)."""
        if not self._drive_timers:
            return
        try:
            async with self._sessions.session() as conn:
                await conn.execute(PROCESS_TIMEOUTS_SQL)
        except psycopg.errors.InsufficientPrivilege as exc:
            self._drive_timers = False
            log.warning("resonate.process_timeouts() refused, leaving timers to pg_cron: %s", exc)

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        attempt = 0
        while True:
            try:
                return await super().send(req, headers)
            except ConnectorError as exc:
                if self._stopped or not isinstance(exc.__cause__, psycopg.OperationalError):
                    raise
                delay = self._backoff.delay(attempt)
                log.warning("Postgres request failed, retrying in %ss: %s", delay, exc.__cause__)
                await asyncio.sleep(delay)
                attempt += 1
