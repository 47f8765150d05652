"""The one client that reads the Resonate server: promises by id, by search, as a call graph.

It speaks the protocol's read requests (``promise.get``, ``promise.search``,
``task.get``) over HTTP with httpx, sending the token when there is one, and
returns :class:`~asyncrpc.protocol.records.PromiseRecord` s. The answers of
the embedded server and of Resonate's own servers both decode here: a status
in the envelope's ``head`` or at its top level, and an error's ``data`` that is
a string or an object.

A ``postgresql://`` URL names resonate-pg, where the server is the database:
the same requests go through ``resonate.resonate_rpc``, except
``promise.search``, which resonate-pg answers with 501; a search there reads
the ``resonate.promises`` table (:func:`search_query`), which needs a role
allowed to SELECT it.

:class:`ServerReader` is for blocking callers (the CLI, the demo, the
benchmarks); :class:`AsyncServerReader` for the gateway's event loop. Both
build their requests and read their answers with the same functions below.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import httpx
from resonate_base import PROTOCOL_VERSION

from asyncrpc.protocol.call_graph import CallNode, build_tree
from asyncrpc.protocol.errors import ServerRefused, ServerUnavailable, UnknownInvocation
from asyncrpc.protocol.records import MalformedRecord, PromiseRecord
from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import ORIGIN_TAG
from asyncrpc.runtime import config
from asyncrpc.runtime.keepalive import postgres_conninfo

if TYPE_CHECKING:
    import psycopg

#: Seconds one request may take before the server counts as unreachable.
DEFAULT_TIMEOUT = 10.0
#: Promises asked for per ``promise.search`` page.
PAGE_SIZE = 1000


@dataclass(frozen=True)
class Answer:
    """One answer of the server: its status and its ``data``."""

    status: int
    data: Any


def envelope(kind: str, token: str | None, **data: Any) -> dict[str, Any]:
    """A protocol request: ``{"kind", "head", "data"}``."""
    head: dict[str, Any] = {"corrId": uuid.uuid4().hex, "version": PROTOCOL_VERSION}
    if token:
        head["auth"] = token
    return {"kind": kind, "head": head, "data": data}


@dataclass
class Search:
    """One ``promise.search`` over all its pages: ask :meth:`request` until :attr:`done`."""

    tags: Mapping[str, str] | None
    state: PromiseState | str | None
    id_prefix: str | None
    found: list[PromiseRecord] = field(default_factory=list)
    cursor: str | None = None
    done: bool = False

    def request(self) -> dict[str, Any]:
        """The ``data`` of the request for the next page."""
        data: dict[str, Any] = {"limit": PAGE_SIZE}
        if self.tags:
            data["tags"] = dict(self.tags)
        if self.state is not None:
            data["state"] = str(self.state)
        if self.id_prefix:
            data["idPrefix"] = self.id_prefix
        if self.cursor:
            data["cursor"] = self.cursor
        return data

    def take(self, answer: Answer) -> None:
        """Keep a page's records; done once the server gives no cursor for another."""
        records, self.cursor = page_of(answer)
        self.found.extend(records)
        self.done = self.cursor is None


def read_answer(response: httpx.Response) -> Answer:
    """The status and data of an answer; :class:`ServerRefused` when it is not one."""
    return answer_of(response.status_code, response.text)


def answer_of(status_code: int, text: str) -> Answer:
    """An answer's body (``text``, sent with ``status_code``) as status and data."""
    try:
        body = json.loads(text)
    except ValueError:
        raise ServerRefused(
            f"the server answered {status_code} without JSON: {text[:200]!r}"
        ) from None
    if status_code == 401:
        raise ServerRefused("the server refused the request (401): set RESONATE_TOKEN")
    if not isinstance(body, Mapping):
        raise ServerRefused(f"the server answered {status_code}: {body!r}")
    head = body.get("head")
    status = head.get("status") if isinstance(head, Mapping) else body.get("status")
    if not isinstance(status, int):
        status = status_code
    return Answer(status=status, data=body.get("data", body))


def _refused(kind: str, answer: Answer) -> ServerRefused:
    detail = (
        answer.data.get("error", answer.data) if isinstance(answer.data, Mapping) else answer.data
    )
    return ServerRefused(f"{kind} failed ({answer.status}): {detail}")


def promise_of(answer: Answer) -> PromiseRecord | None:
    """A ``promise.get`` answer as a record; None when the promise does not exist."""
    if answer.status == 404:
        return None
    data = answer.data
    if answer.status != 200 or not isinstance(data, Mapping):
        raise _refused("promise.get", answer)
    try:
        return PromiseRecord.from_wire(data.get("promise", data))
    except MalformedRecord as exc:
        raise ServerRefused(f"promise.get answered something else: {exc}") from None


def page_of(answer: Answer) -> tuple[list[PromiseRecord], str | None]:
    """A ``promise.search`` answer: the page's records and the cursor of the next one."""
    data = answer.data
    if answer.status != 200 or not isinstance(data, Mapping):
        raise _refused("promise.search", answer)
    promises = data.get("promises")
    try:
        records = [PromiseRecord.from_wire(p) for p in promises or ()]
    except MalformedRecord as exc:
        raise ServerRefused(f"promise.search answered something else: {exc}") from None
    cursor = data.get("cursor")
    return records, cursor if isinstance(cursor, str) and cursor else None


def task_state_of(answer: Answer) -> str | None:
    """A ``task.get`` answer's task state (``pending``, ``acquired`` ...); None without one."""
    task = answer.data.get("task") if isinstance(answer.data, Mapping) else None
    state = task.get("state") if isinstance(task, Mapping) else None
    return state if answer.status == 200 and isinstance(state, str) else None


def graph_of(root_id: str, records: list[PromiseRecord]) -> CallNode:
    if not any(record.id == root_id for record in records):
        raise UnknownInvocation(f"no invocation with id {root_id!r}")
    return build_tree(root_id, records)


def _unreachable(url: str, exc: Exception) -> ServerUnavailable:
    return ServerUnavailable(f"the Resonate server at {config.redacted(url)} is unreachable: {exc}")


# -- resonate-pg: the server is a Postgres database ------------------------------------

#: One protocol request, answered by resonate-pg's stored procedure.
RPC_SQL = "SELECT resonate.resonate_rpc(%s::text::jsonb)::text"
PROMISE_COLUMNS = (
    "id, state, param_headers, param_data, value_headers, value_data, tags, "
    "timeout_at, created_at, settled_at"
)


def search_query(
    tags: Mapping[str, str] | None, state: PromiseState | str | None, id_prefix: str | None
) -> tuple[str, list[Any]]:
    """The SELECT that answers a ``promise.search`` from resonate-pg's ``promises`` table.

    The origin tag is matched on the indexed ``origin_id`` column, so reading one
    invocation's call graph does not scan every promise.
    """
    where: list[str] = []
    params: list[Any] = []
    for key, value in (tags or {}).items():
        if key == ORIGIN_TAG:
            where.append("origin_id = %s")
            params.append(value)
        else:
            where.append("tags ->> %s = %s")
            params += [key, value]
    if state is not None:
        where.append("state LIKE %s" if str(state) == PromiseState.REJECTED else "state = %s")
        params.append(f"{state}%" if str(state) == PromiseState.REJECTED else str(state))
    if id_prefix:
        where.append("starts_with(id, %s)")
        params.append(id_prefix)
    condition = " AND ".join(where) or "TRUE"
    sql = (
        f"SELECT {PROMISE_COLUMNS} FROM resonate.promises WHERE {condition} ORDER BY created_at, id"
    )
    return sql, params


def promise_of_row(row: Sequence[Any], now_ms: int) -> PromiseRecord:
    """A row of ``resonate.promises`` as a record, as ``promise.get`` would answer it.

    A pending promise past its timeout reads as timed out (a timer as resolved),
    as resonate-pg reports it before its timer loop has settled it.
    """
    (pid, state, param_headers, param_data, value_headers, value_data, tags) = row[:7]
    timeout_at, created_at, settled_at = row[7:]
    if state == PromiseState.PENDING and timeout_at <= now_ms:
        timer = (tags or {}).get("resonate:timer") == "true"
        state = PromiseState.RESOLVED if timer else PromiseState.REJECTED_TIMEDOUT
        settled_at = timeout_at
    return PromiseRecord.from_wire(
        {
            "id": pid,
            "state": state,
            "param": {"headers": param_headers, "data": param_data},
            "value": {"headers": value_headers, "data": value_data},
            "tags": tags,
            "createdAt": created_at,
            "settledAt": settled_at,
        }
    )


def now_ms() -> int:
    return int(time.time() * 1000)


def _connect_options(timeout: float) -> dict[str, Any]:
    return {"autocommit": True, "connect_timeout": max(1, round(timeout))}


class PostgresTables:
    """Reads a resonate-pg database, blocking: one connection, opened when first needed."""

    def __init__(self, dsn: str, timeout: float) -> None:
        self.dsn = dsn
        self._timeout = timeout
        self._conn: psycopg.Connection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        import psycopg  # only a Postgres server needs it; `asyncrpc call` skips the import

        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(
                    postgres_conninfo(self.dsn), **_connect_options(self._timeout)
                )
            return self._conn.execute(sql, params).fetchall()  # type: ignore[arg-type]
        except psycopg.OperationalError as exc:
            self.close()
            raise _unreachable(self.dsn, exc) from None
        except psycopg.Error as exc:
            raise ServerRefused(f"the database refused the read: {exc}") from None

    def ask(self, request: dict[str, Any]) -> Answer:
        rows = self._fetch(RPC_SQL, [json.dumps(request)])
        return answer_of(200, rows[0][0])

    def search(self, search: Search) -> list[PromiseRecord]:
        now = now_ms()
        rows = self._fetch(*search_query(search.tags, search.state, search.id_prefix))
        return [promise_of_row(row, now) for row in rows]


class AsyncPostgresTables:
    """:class:`PostgresTables` for an event loop."""

    def __init__(self, dsn: str, timeout: float) -> None:
        self.dsn = dsn
        self._timeout = timeout
        self._conn: psycopg.AsyncConnection | None = None

    async def aclose(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            if self._conn is None or self._conn.closed:
                self._conn = await psycopg.AsyncConnection.connect(
                    postgres_conninfo(self.dsn), **_connect_options(self._timeout)
                )
            cursor = await self._conn.execute(sql, params)  # type: ignore[arg-type]
            return await cursor.fetchall()
        except psycopg.OperationalError as exc:
            await self.aclose()
            raise _unreachable(self.dsn, exc) from None
        except psycopg.Error as exc:
            raise ServerRefused(f"the database refused the read: {exc}") from None

    async def ask(self, request: dict[str, Any]) -> Answer:
        rows = await self._fetch(RPC_SQL, [json.dumps(request)])
        return answer_of(200, rows[0][0])

    async def search(self, search: Search) -> list[PromiseRecord]:
        now = now_ms()
        rows = await self._fetch(*search_query(search.tags, search.state, search.id_prefix))
        return [promise_of_row(row, now) for row in rows]


def client_options(url: str, token: str | None, timeout: float) -> dict[str, Any]:
    """How both readers' httpx clients are made: the server's URL, the token, no proxies."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return {"base_url": url, "headers": headers, "timeout": timeout, "trust_env": False}


class ServerReader:
    """Reads one server, blocking. Raises :class:`ServerUnavailable` / :class:`ServerRefused`."""

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
        self._client = httpx.Client(transport=transport, **client_options(self.url, token, timeout))
        self._tables = PostgresTables(self.url, timeout) if config.is_postgres_url(url) else None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()
        if self._tables is not None:
            self._tables.close()

    def _ask(self, kind: str, **data: Any) -> Answer:
        if self._tables is not None:
            return self._tables.ask(envelope(kind, self.token, **data))
        try:
            response = self._client.post("/", json=envelope(kind, self.token, **data))
        except httpx.HTTPError as exc:
            raise _unreachable(self.url, exc) from None
        return read_answer(response)

    def get(self, promise_id: str) -> PromiseRecord | None:
        """The promise with this id; None when there is none."""
        return promise_of(self._ask("promise.get", id=promise_id))

    def search(
        self,
        *,
        tags: Mapping[str, str] | None = None,
        state: PromiseState | str | None = None,
        id_prefix: str | None = None,
    ) -> list[PromiseRecord]:
        """Every promise that matches (all pages), in the server's order."""
        search = Search(tags, state, id_prefix)
        if self._tables is not None:
            return self._tables.search(search)
        while not search.done:
            search.take(self._ask("promise.search", **search.request()))
        return search.found

    def call_graph(self, root_id: str) -> CallNode:
        """The invocation's call graph; :class:`UnknownInvocation` when it does not exist."""
        return graph_of(root_id, self.search(tags={ORIGIN_TAG: root_id}))

    def task_state(self, task_id: str) -> str | None:
        """The state of a step's task (its id is its promise's); None when there is none."""
        return task_state_of(self._ask("task.get", id=task_id))

    def answers(self) -> bool:
        """Whether anything answers HTTP at the server's URL (or the database, for resonate-pg)."""
        if self._tables is not None:
            try:
                self._tables.ask(envelope("promise.get", self.token, id=""))
            except (ServerUnavailable, ServerRefused):
                return False
            return True
        try:
            self._client.get("/healthz")
        except httpx.HTTPError:
            return False
        return True


class AsyncServerReader:
    """:class:`ServerReader` for an event loop (the gateway's)."""

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
        self._client = httpx.AsyncClient(
            transport=transport, **client_options(self.url, token, timeout)
        )
        postgres = config.is_postgres_url(url)
        self._tables = AsyncPostgresTables(self.url, timeout) if postgres else None

    async def aclose(self) -> None:
        await self._client.aclose()
        if self._tables is not None:
            await self._tables.aclose()

    async def _ask(self, kind: str, **data: Any) -> Answer:
        if self._tables is not None:
            return await self._tables.ask(envelope(kind, self.token, **data))
        try:
            response = await self._client.post("/", json=envelope(kind, self.token, **data))
        except httpx.HTTPError as exc:
            raise _unreachable(self.url, exc) from None
        return read_answer(response)

    async def get(self, promise_id: str) -> PromiseRecord | None:
        """The promise with this id; None when there is none."""
        return promise_of(await self._ask("promise.get", id=promise_id))

    async def search(
        self,
        *,
        tags: Mapping[str, str] | None = None,
        state: PromiseState | str | None = None,
        id_prefix: str | None = None,
    ) -> list[PromiseRecord]:
        """Every promise that matches (all pages), in the server's order."""
        search = Search(tags, state, id_prefix)
        if self._tables is not None:
            return await self._tables.search(search)
        while not search.done:
            search.take(await self._ask("promise.search", **search.request()))
        return search.found

    async def call_graph(self, root_id: str) -> CallNode:
        """The invocation's call graph; :class:`UnknownInvocation` when it does not exist."""
        return graph_of(root_id, await self.search(tags={ORIGIN_TAG: root_id}))
