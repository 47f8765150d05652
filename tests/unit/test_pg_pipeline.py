"""The pipelined connection's bookkeeping, on a libpq connection that fails as told."""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from psycopg import pq

from asyncrpc.network.pg_pipeline import PipelinedConnection


class DroppingPg:
    """A libpq connection that is up until a statement is sent, which finds it dropped."""

    def __init__(self, fd: int) -> None:
        self.socket = fd
        self.nonblocking = 0
        self.status = pq.ConnStatus.OK

    def enter_pipeline_mode(self) -> None:
        pass

    def send_prepare(self, name: bytes, command: bytes) -> None:
        self.status = pq.ConnStatus.BAD
        raise psycopg.OperationalError("server closed the connection unexpectedly")


def test_a_statement_whose_preparation_cannot_be_sent_fails_instead_of_waiting() -> None:
    async def scenario() -> None:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            conn: Any = SimpleNamespace(
                pgconn=DroppingPg(ours.fileno()), info=SimpleNamespace(encoding="utf-8")
            )
            pipelined = PipelinedConnection(conn)
            with pytest.raises(psycopg.OperationalError, match="closed the connection"):
                await asyncio.wait_for(pipelined.execute("SELECT %s", (1,)), 5)
            assert pipelined.broken and pipelined.closed.is_set()

    asyncio.run(scenario())
