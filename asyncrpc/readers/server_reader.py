"""The one client that reads the Resonate server: promises by id, by search, as a call graph.

It speaks the protocol's read requests (``promise.get``, ``promise.search``,
``task.get``, ``schedule.search``, and the embedded server's ``task.acquisitions``)
and returns typed records: :class:`~asyncrpc.protocol.records.PromiseRecord`,
:class:`~asyncrpc.protocol.records.TaskRecord`,
:class:`~asyncrpc.protocol.records.ScheduleRecord`,
:class:`~asyncrpc.protocol.records.TaskAcquisition`.
The URL chooses how: ``http://`` goes over HTTP (:mod:`asyncrpc.readers.http`),
``postgresql://`` names resonate-pg, where the server is the database
(:mod:`asyncrpc.readers.postgres`). Either way an answer decodes with the same
function of :mod:`asyncrpc.protocol.answers`.

:class:`ServerReader` is for blocking callers (the CLI, the demo, the
benchmarks); :class:`AsyncServerReader` for an event loop (the gateway's, the
dashboard's). The two have the same methods with the same parameters, in the
same order, each the other's twin line for line (``close`` / ``aclose``, ``with``
/ ``async with``); ``tests/unit/test_reader_twins.py`` keeps them so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, Self

import httpx

from asyncrpc.protocol.answers import (
    Answer,
    ScheduleSearch,
    Search,
    acquisitions_of,
    graph_of,
    promise_of,
    task_of,
    task_state_of,
)
from asyncrpc.protocol.call_graph import CallNode
from asyncrpc.protocol.patterns import WILDCARD
from asyncrpc.protocol.records import PromiseRecord, ScheduleRecord, TaskAcquisition, TaskRecord
from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import ORIGIN_TAG
from asyncrpc.readers.http import AsyncHttpEndpoint, HttpEndpoint
from asyncrpc.readers.postgres import AsyncPostgresTables, PostgresTables
from asyncrpc.runtime import config

#: Seconds one request may take before the server counts as unreachable.
DEFAULT_TIMEOUT = 10.0


class Server(Protocol):
    """What a blocking reader asks of its server, over HTTP or Postgres."""

    def close(self) -> None: ...
    def ask(self, kind: str, **data: Any) -> Answer: ...
    def search(self, search: Search) -> list[PromiseRecord]: ...
    def schedules(self, search: ScheduleSearch) -> list[ScheduleRecord]: ...
    def answers(self) -> bool: ...


class AsyncServer(Protocol):
    """:class:`Server` for an event loop."""

    async def aclose(self) -> None: ...
    async def ask(self, kind: str, **data: Any) -> Answer: ...
    async def search(self, search: Search) -> list[PromiseRecord]: ...
    async def schedules(self, search: ScheduleSearch) -> list[ScheduleRecord]: ...
    async def answers(self) -> bool: ...


class ServerReader:
    """Reads one server, blocking. Raises :class:`ServerUnavailable` / :class:`ServerRefused`.

    ``transport`` (httpx's) answers the HTTP requests in place of the network, for tests.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self._server: Server = (
            PostgresTables(self.url, token, timeout)
            if config.is_postgres_url(self.url)
            else HttpEndpoint(self.url, token, timeout, transport)
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.close()

    def get(self, promise_id: str) -> PromiseRecord | None:
        """The promise with this id; None when there is none."""
        return promise_of(self._server.ask("promise.get", id=promise_id))

    def search(
        self,
        *,
        tags: Mapping[str, str] | None = None,
        state: PromiseState | str | None = None,
        id_prefix: str | None = None,
        newest: int | None = None,
    ) -> list[PromiseRecord]:
        """Every promise that matches (all pages), in the server's order.

        With ``newest``: only the newest that many, newest first.
        """
        return self._server.search(Search(tags, state, id_prefix, newest))

    def call_graph(self, root_id: str) -> CallNode:
        """The invocation's call graph; :class:`UnknownInvocation` when it does not exist."""
        return graph_of(root_id, self.search(tags={ORIGIN_TAG: root_id}))

    def task_state(self, task_id: str) -> str | None:
        """The state of a step's task (its id is its promise's); None when there is none."""
        return task_state_of(self._server.ask("task.get", id=task_id))

    def task(self, task_id: str) -> TaskRecord | None:
        """A step's task (its state, the process that holds it, its acquisitions); None without."""
        return task_of(self._server.ask("task.get", id=task_id))

    def acquisitions(self, task_id: str) -> tuple[TaskAcquisition, ...] | None:
        """Who took a step's task, when and why, oldest first; None when the server keeps
        no record (resonate-pg's tables hold the latest holder only)."""
        return acquisitions_of(self._server.ask("task.acquisitions", id=task_id))

    def schedules(self, pattern: str = WILDCARD) -> list[ScheduleRecord]:
        """The schedules whose ids ``pattern`` names (``*`` any characters), by id."""
        return self._server.schedules(ScheduleSearch(pattern))

    def answers(self) -> bool:
        """Whether anything answers HTTP at the server's URL (or the database, for resonate-pg)."""
        return self._server.answers()


class AsyncServerReader:
    """:class:`ServerReader` for an event loop.

    ``transport`` (httpx's) answers the HTTP requests in place of the network, for tests.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self._server: AsyncServer = (
            AsyncPostgresTables(self.url, token, timeout)
            if config.is_postgres_url(self.url)
            else AsyncHttpEndpoint(self.url, token, timeout, transport)
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._server.aclose()

    async def get(self, promise_id: str) -> PromiseRecord | None:
        """The promise with this id; None when there is none."""
        return promise_of(await self._server.ask("promise.get", id=promise_id))

    async def search(
        self,
        *,
        tags: Mapping[str, str] | None = None,
        state: PromiseState | str | None = None,
        id_prefix: str | None = None,
        newest: int | None = None,
    ) -> list[PromiseRecord]:
        """Every promise that matches (all pages), in the server's order.

        With ``newest``: only the newest that many, newest first.
        """
        return await self._server.search(Search(tags, state, id_prefix, newest))

    async def call_graph(self, root_id: str) -> CallNode:
        """The invocation's call graph; :class:`UnknownInvocation` when it does not exist."""
        return graph_of(root_id, await self.search(tags={ORIGIN_TAG: root_id}))

    async def task_state(self, task_id: str) -> str | None:
        """The state of a step's task (its id is its promise's); None when there is none."""
        return task_state_of(await self._server.ask("task.get", id=task_id))

    async def task(self, task_id: str) -> TaskRecord | None:
        """A step's task (its state, the process that holds it, its acquisitions); None without."""
        return task_of(await self._server.ask("task.get", id=task_id))

    async def acquisitions(self, task_id: str) -> tuple[TaskAcquisition, ...] | None:
        """Who took a step's task, when and why, oldest first; None when the server keeps
        no record (resonate-pg's tables hold the latest holder only)."""
        return acquisitions_of(await self._server.ask("task.acquisitions", id=task_id))

    async def schedules(self, pattern: str = WILDCARD) -> list[ScheduleRecord]:
        """The schedules whose ids ``pattern`` names (``*`` any characters), by id."""
        return await self._server.schedules(ScheduleSearch(pattern))

    async def answers(self) -> bool:
        """Whether anything answers HTTP at the server's URL (or the database, for resonate-pg)."""
        return await self._server.answers()
