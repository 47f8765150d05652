"""Reading a Resonate server over HTTP (httpx): blocking and for an event loop, side by side.

Each request is one protocol envelope ``POST``-ed to ``/``, with the token
both as a bearer header and in the envelope's head; a search follows the
server's cursor page by page. :class:`HttpEndpoint` and
:class:`AsyncHttpEndpoint` have the same methods (``close`` / ``aclose`` as
httpx names them) and decode with the same functions of
:mod:`asyncrpc.protocol.answers`.
"""

from __future__ import annotations

from typing import Any

import httpx

from asyncrpc.protocol.answers import Answer, ScheduleSearch, Search, answer_of, envelope
from asyncrpc.protocol.errors import ServerUnavailable, unreachable
from asyncrpc.protocol.records import PromiseRecord, ScheduleRecord
from asyncrpc.runtime import config

#: Where a server answers that it is there, whatever the state of its store.
HEALTH_PATH = "/healthz"


def client_options(url: str, token: str | None, timeout: float) -> dict[str, Any]:
    """How both endpoints' httpx clients are made: the server's URL, the token, no proxies.

    For an ``http://`` URL no TLS certificates are loaded: httpx loads them when a client
    is made, which costs 30 to 240 ms of CPU on this project's machine (the gateway's and
    the dashboard's start-up), for connections that never use TLS.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    options = {"base_url": url, "headers": headers, "timeout": timeout, "trust_env": False}
    return options | ({"verify": False} if url.startswith("http://") else {})


def read_answer(response: httpx.Response) -> Answer:
    """The status and data of an answer; :class:`ServerRefused` when it is not one."""
    return answer_of(response.status_code, response.text)


def silent(url: str, exc: httpx.HTTPError) -> ServerUnavailable:
    """The error for a request to ``url`` that got no answer."""
    return unreachable(config.redacted(url), exc)


class HttpEndpoint:
    """One server's HTTP endpoint, blocking: one httpx client, its connections kept alive."""

    def __init__(
        self, url: str, token: str | None, timeout: float, transport: httpx.BaseTransport | None
    ) -> None:
        self.url = url
        self.token = token
        self._client = httpx.Client(transport=transport, **client_options(url, token, timeout))

    def close(self) -> None:
        self._client.close()

    def ask(self, kind: str, **data: Any) -> Answer:
        """One request of ``kind`` and its answer; :class:`ServerUnavailable` without one."""
        try:
            response = self._client.post("/", json=envelope(kind, self.token, **data))
        except httpx.HTTPError as exc:
            raise silent(self.url, exc) from None
        return read_answer(response)

    def search(self, search: Search) -> list[PromiseRecord]:
        """Every page of ``search``, in the server's order."""
        while not search.done:
            search.take(self.ask("promise.search", **search.request()))
        return search.found

    def schedules(self, search: ScheduleSearch) -> list[ScheduleRecord]:
        """Every page of ``search`` (``schedule.search``), by id."""
        while not search.done:
            search.take(self.ask("schedule.search", **search.request()))
        return search.found

    def answers(self) -> bool:
        """Whether anything answers HTTP at the server's URL."""
        try:
            self._client.get(HEALTH_PATH)
        except httpx.HTTPError:
            return False
        return True


class AsyncHttpEndpoint:
    """:class:`HttpEndpoint` for an event loop."""

    def __init__(
        self,
        url: str,
        token: str | None,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.url = url
        self.token = token
        self._client = httpx.AsyncClient(transport=transport, **client_options(url, token, timeout))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def ask(self, kind: str, **data: Any) -> Answer:
        """One request of ``kind`` and its answer; :class:`ServerUnavailable` without one."""
        try:
            response = await self._client.post("/", json=envelope(kind, self.token, **data))
        except httpx.HTTPError as exc:
            raise silent(self.url, exc) from None
        return read_answer(response)

    async def search(self, search: Search) -> list[PromiseRecord]:
        """Every page of ``search``, in the server's order."""
        while not search.done:
            search.take(await self.ask("promise.search", **search.request()))
        return search.found

    async def schedules(self, search: ScheduleSearch) -> list[ScheduleRecord]:
        """Every page of ``search`` (``schedule.search``), by id."""
        while not search.done:
            search.take(await self.ask("schedule.search", **search.request()))
        return search.found

    async def answers(self) -> bool:
        """Whether anything answers HTTP at the server's URL."""
        try:
            await self._client.get(HEALTH_PATH)
        except httpx.HTTPError:
            return False
        return True
