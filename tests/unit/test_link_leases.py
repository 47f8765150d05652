"""Leases in the dequeue: a node's link acquires its tasks as it claims their execute rows.

The database is faked in memory (statements answered as a test says); the SDK is
the real one, joined as a node joins, so what the link answers its acquire with
is what the SDK accepts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from psycopg import errors
from resonate.context import Context
from resonate.resonate import Resonate
from resonate.retry import ExponentialBackoff
from resonate_pg.connection import DEQUEUE_EXECUTE_SQL

from asyncrpc.network.join import PollStream, join, links
from asyncrpc.network.postgres_link import (
    DEQUEUE_ACQUIRE_SQL,
    WRAPPED_RPC_SQL,
    Leases,
    PostgresLink,
    Queue,
)
from asyncrpc.node.worker import sdk_room, take_leases
from asyncrpc.postgres.schema import DEQUEUE_ACQUIRE, STEP_FUNCTIONS_SQL
from tests.support.clocks import Clock

TTL_S = 5.0
TTL_MS = 5000
GROUP_EXECUTE = frozenset({Queue.GROUP_EXECUTE})


def encoded(value: object) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def promise(task: str, state: str = "pending", value: str | None = None) -> dict[str, Any]:
    return {
        "id": task,
        "state": state,
        "param": {"headers": {}, "data": encoded({"func": "double", "args": [21], "version": 1})},
        "value": {"headers": {}, "data": value},
        "tags": {"resonate:target": "poll://any@service-b", "resonate:origin": task},
        "timeoutAt": 2**50,
        "createdAt": 1,
        "settledAt": None if state == "pending" else 2,
    }


def acquired(task: str, version: int) -> str:
    """The ``data`` asyncrpc.dequeue_acquire returns for an acquired task (as asyncrpc.rpc's)."""
    record = {"id": task, "state": "acquired", "version": version + 1, "resumes": 0}
    record |= {"ttl": TTL_MS, "pid": "b-1"}
    return json.dumps({"task": record, "promise": promise(task), "preload": []})


class Database:
    """The pipelined connection, faked: each statement answered by ``answer`` (or a failure)."""

    def __init__(self) -> None:
        self.executed: list[tuple[str, tuple[Any, ...]]] = []
        self.failures: dict[str, Exception] = {}
        self.rows: dict[str, list[tuple[Any, ...]]] = {}
        self.requests: list[dict[str, Any]] = []

    async def execute(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        self.executed.append((query, tuple(params or ())))
        if query in self.failures:
            raise self.failures[query]
        if query == WRAPPED_RPC_SQL:
            return [(self.answer(json.loads(params[0])),)]
        return self.rows.get(query, [])

    def answer(self, request: dict[str, Any]) -> str:
        self.requests.append(request)
        kind, head, data = request["kind"], request["head"], request["data"]
        if kind == "task.fulfill":
            settled = data["action"]["data"]
            body: Any = {"promise": promise(data["id"], settled["state"], settled["value"]["data"])}
            status = 200
        else:
            body, status = "conflict", 409
        return json.dumps(
            {"kind": kind, "head": {"corrId": head["corrId"], "status": status}, "data": body}
        )

    def statements(self, query: str) -> list[tuple[Any, ...]]:
        return [params for sql, params in self.executed if sql == query]

    async def listen(self, channels: Any, on_notify: Any) -> Any:
        await asyncio.Event().wait()  # never listening: the pump drains on its own

    async def close(self) -> None:
        pass


def new_link(db: Database, clock: Clock | None = None) -> PostgresLink:
    return PostgresLink(
        "postgresql://asyncrpc_b@db.internal:5432/app",
        pid="b-1",
        group="service-b",
        backoff=ExponentialBackoff(initial=0.01, max_delay=0.01),
        clock=clock or Clock(),
        sessions=db,  # type: ignore[arg-type]
    )


def acquire_request(task: str, version: int, corr: str = "sr-1", ttl: int = TTL_MS) -> str:
    """The SDK's ``task.acquire``, as it writes it."""
    head = {"corrId": corr, "version": "2025-01-15"}
    data = {"id": task, "version": version, "pid": "b-1", "ttl": ttl}
    return json.dumps({"kind": "task.acquire", "head": head, "data": data}, separators=(",", ":"))


def test_a_nodes_step_runs_on_the_lease_its_dequeue_took_with_no_acquire_statement() -> None:
    async def scenario() -> tuple[Database, PostgresLink, int]:
        db = Database()
        db.rows[DEQUEUE_ACQUIRE_SQL] = [("step-1", 1, acquired("step-1", 1))]
        link = new_link(db)
        done = asyncio.Event()

        async def double(ctx: Context, x: int) -> int:
            done.set()
            return x * 2

        resonate, stream = join(
            "postgresql://db.internal/app",
            group="service-b",
            pid="b-1",
            ttl=TTL_S,
            connection=(link, link),
        )
        assert take_leases(stream, resonate, TTL_S)
        resonate.register(double, name="double")
        await asyncio.wait_for(done.wait(), 5)
        for _ in range(50):  # the fulfill follows the function's return
            if any(r["kind"] == "task.fulfill" for r in db.requests):
                break
            await asyncio.sleep(0.01)
        room = sdk_room(resonate)()
        await resonate.stop()
        return db, link, room

    db, link, room = asyncio.run(scenario())
    [params] = db.statements(DEQUEUE_ACQUIRE_SQL)[:1]
    assert params[2:] == ("b-1", TTL_MS, 64)  # its pid, the SDK's ttl, the SDK's free permits
    kinds = [request["kind"] for request in db.requests]
    assert "task.acquire" not in kinds  # answered from what the dequeue took
    [fulfill] = [r for r in db.requests if r["kind"] == "task.fulfill"]
    assert fulfill["data"]["id"] == "step-1" and fulfill["data"]["version"] == 2
    assert base64.b64decode(fulfill["data"]["action"]["data"]["value"]["data"]) == b"42"
    # The first drain takes every queue: the group's with leases, this process's own plainly.
    assert params[0] == "poll://any@service-b"
    assert [p[0] for p in db.statements(DEQUEUE_EXECUTE_SQL)] == ["poll://uni@service-b/b-1"]
    assert room == 64 and not link._kept


def test_the_kept_answer_is_the_acquires_with_the_requests_correlation_id() -> None:
    async def scenario() -> tuple[str, list[str]]:
        db = Database()
        db.rows[DEQUEUE_ACQUIRE_SQL] = [("step-1", 1, acquired("step-1", 1)), ("step-2", 4, None)]
        link = new_link(db)
        link.take_leases(Leases.for_ttl(TTL_S, lambda: 8))
        delivered: list[str] = []
        link.recv(delivered.append)
        await link._drain(GROUP_EXECUTE)
        answer = await link.send(acquire_request("step-1", 1, corr="sr-abc-7"))
        # Every row is an execute message; the one whose acquire failed is a plain one.
        assert [json.loads(m)["data"]["task"]["id"] for m in delivered] == ["step-1", "step-2"]
        await link.send(acquire_request("step-2", 4))
        return answer, [json.loads(r[0])["data"]["id"] for r in db.statements(WRAPPED_RPC_SQL)]

    answer, asked = asyncio.run(scenario())
    parsed = json.loads(answer)
    assert parsed["kind"] == "task.acquire"
    assert parsed["head"] == {"corrId": "sr-abc-7", "status": 200, "version": "2025-01-15"}
    assert parsed["data"] == json.loads(acquired("step-1", 1))
    assert asked == ["step-2"]  # only the plain row's acquire went to the database


def test_leases_are_taken_only_while_the_sdk_has_room() -> None:
    async def scenario() -> Database:
        db = Database()
        db.rows[DEQUEUE_ACQUIRE_SQL] = [("step-1", 1, acquired("step-1", 1))]
        link = new_link(db)
        room = [0]
        link.take_leases(Leases.for_ttl(TTL_S, lambda: room[0]))
        await link._drain(GROUP_EXECUTE)  # no room: the plain dequeue
        room[0] = 3
        await link._drain(GROUP_EXECUTE)  # room for 3
        await link._drain(GROUP_EXECUTE)  # room for 3, less the answer kept and not asked for
        await link._drain(frozenset({Queue.GROUP_EXECUTE, Queue.OWN_EXECUTE}))
        return db

    db = asyncio.run(scenario())
    assert len(db.statements(DEQUEUE_EXECUTE_SQL)) == 2  # the first drain, the second queue
    leases = [params[4] for params in db.statements(DEQUEUE_ACQUIRE_SQL)]
    assert leases == [3, 2, 2]  # one budget per drain, shared by its execute queues


def test_an_answer_the_sdk_does_not_ask_for_in_time_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> tuple[Database, str, int]:
        db = Database()
        db.rows[DEQUEUE_ACQUIRE_SQL] = [("step-1", 1, acquired("step-1", 1))]
        clock = Clock()
        link = new_link(db, clock)
        link.take_leases(Leases.for_ttl(TTL_S, lambda: 2))
        await link._drain(GROUP_EXECUTE)
        clock.now += TTL_S / 4 + 0.1
        with caplog.at_level(logging.INFO):
            late = await link.send(acquire_request("step-1", 1))
        await link._drain(GROUP_EXECUTE)
        clock.now += TTL_S / 4 + 0.1
        room = link._lease_room()  # drops the second kept answer, its time past
        return db, late, room

    db, late, room = asyncio.run(scenario())
    assert json.loads(late)["head"]["status"] == 409  # the database's answer: the lease is taken
    assert [json.loads(p[0])["kind"] for p in db.statements(WRAPPED_RPC_SQL)] == ["task.acquire"]
    assert room == 2
    assert "went unused" in caplog.text
    assert Leases.for_ttl(TTL_S, lambda: 0).keep_s <= TTL_S / 4  # the SDK beats at ttl/2


def test_an_acquire_for_another_pid_or_ttl_goes_to_the_database_and_ends_the_leases() -> None:
    async def scenario() -> Database:
        db = Database()
        db.rows[DEQUEUE_ACQUIRE_SQL] = [("step-1", 1, acquired("step-1", 1))]
        link = new_link(db)
        link.take_leases(Leases.for_ttl(TTL_S, lambda: 2))
        await link._drain(GROUP_EXECUTE)
        await link.send(acquire_request("step-1", 1, ttl=TTL_MS + 1))
        await link.send(acquire_request("step-1", 1))  # the kept answer is gone
        await link._drain(GROUP_EXECUTE)  # the plain dequeue from now on
        return db

    db = asyncio.run(scenario())
    kinds = [json.loads(p[0])["kind"] for p in db.statements(WRAPPED_RPC_SQL)]
    assert kinds == ["task.acquire", "task.acquire"]
    assert len(db.statements(DEQUEUE_ACQUIRE_SQL)) == len(db.statements(DEQUEUE_EXECUTE_SQL)) == 1


def test_the_lease_asked_for_is_the_sdks_ttl_in_its_milliseconds() -> None:
    assert Leases.for_ttl(5.0, lambda: 0).ttl_ms == 5000
    assert Leases.for_ttl(0.0015, lambda: 0).ttl_ms == 1  # cut, as the SDK's int()
    assert Leases.for_ttl(0.0004, lambda: 0).ttl_ms == 1 << 50  # none: the SDK's 'forever'


def test_a_database_without_the_function_gets_the_plain_dequeue_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(failure: Exception) -> Database:
        db = Database()
        db.failures[DEQUEUE_ACQUIRE_SQL] = failure
        db.rows[DEQUEUE_EXECUTE_SQL] = [("step-1", 1)]
        link = new_link(db)
        link.take_leases(Leases.for_ttl(TTL_S, lambda: 2))
        delivered: list[str] = []
        link.recv(delivered.append)
        await link._drain(GROUP_EXECUTE)
        await link._drain(GROUP_EXECUTE)
        assert len(delivered) == 2 and not link._kept
        return db

    with caplog.at_level(logging.INFO):
        missing = asyncio.run(scenario(errors.UndefinedFunction("no such function")))
        refused = asyncio.run(scenario(errors.InsufficientPrivilege("permission denied")))
    for db in (missing, refused):
        assert len(db.statements(DEQUEUE_ACQUIRE_SQL)) == 1
        assert len(db.statements(DEQUEUE_EXECUTE_SQL)) == 2
    assert caplog.text.count("tasks are acquired one request each") == 2


def test_a_link_not_told_to_take_leases_dequeues_plainly() -> None:
    async def scenario() -> Database:
        db = Database()
        link = new_link(db)
        await link._drain(GROUP_EXECUTE)
        assert await link.send(acquire_request("step-1", 1))
        return db

    db = asyncio.run(scenario())
    assert db.statements(DEQUEUE_ACQUIRE_SQL) == []
    assert len(db.statements(DEQUEUE_EXECUTE_SQL)) == 1


def test_a_link_as_the_gateway_makes_it_takes_no_leases() -> None:
    """The gateway joins through :func:`links` alone; only a node's wiring takes leases."""

    async def scenario() -> object:
        network, stream = links("postgresql://gw@db.internal:5432/app", group="gateway", pid="gw")
        assert isinstance(stream, PostgresLink) and network is stream
        return stream._kept.leases

    assert asyncio.run(scenario()) is None


def test_a_poll_stream_asks_for_its_executes_with_their_leases() -> None:
    async def scenario() -> tuple[bool, bytes, bool]:
        stream = PollStream("http://127.0.0.1:9", pid="p-1", group="g")
        resonate = Resonate(group="g", pid="p-1", autostart=False, max_concurrent_tasks=8)
        taken = take_leases(stream, resonate, TTL_S)
        return taken, stream._request, take_leases(object(), resonate, TTL_S)

    taken, request, other = asyncio.run(scenario())
    assert taken and not other
    assert request.startswith(b"GET /poll/g/p-1?lease=%d&room=8 HTTP/1.1\r\n" % int(TTL_S * 1000))


def test_a_poll_stream_whose_sdk_asks_for_other_leases_asks_the_server_for_none() -> None:
    stream = PollStream("http://127.0.0.1:9", pid="p-1", group="g")
    plain = stream._request
    assert stream.take_leases(Leases.for_ttl(TTL_S, lambda: 8))
    stream.kept.keep("t", 0, "{}")
    other_ttl = json.dumps(
        {
            "kind": "task.acquire",
            "head": {"corrId": "c-1", "version": "1"},
            "data": {"id": "t", "version": 0, "pid": "p-1", "ttl": 60_000},
        },
        separators=(",", ":"),
    )
    assert stream.kept.answer(other_ttl) is None
    assert stream._request == plain and stream.kept.leases is None


def test_a_poll_stream_whose_sdk_has_no_room_to_tell_asks_for_none() -> None:
    stream = PollStream("http://127.0.0.1:9", pid="p-1", group="g")
    before = stream._request
    assert not stream.take_leases(Leases.for_ttl(TTL_S, lambda: 0))
    assert stream._request == before and stream.kept.leases is None


def test_the_room_is_the_sdks_free_permits() -> None:
    async def scenario() -> list[int]:
        resonate = Resonate(group="g", pid="p-1", autostart=False, max_concurrent_tasks=2)
        room: Callable[[], int] = sdk_room(resonate)
        seen = [room()]
        semaphore = resonate._runtime.execute_sema
        await semaphore.acquire()
        seen.append(room())
        await semaphore.acquire()
        seen.append(room())
        waiter = asyncio.ensure_future(semaphore.acquire())
        await asyncio.sleep(0)
        semaphore.release()  # a permit is free, but the waiter takes it first
        seen.append(room())
        await waiter
        return seen

    assert asyncio.run(scenario()) == [2, 1, 0, 0]


def test_the_step_creates_the_dequeue_the_link_calls_for_the_worker_role() -> None:
    name = DEQUEUE_ACQUIRE.split("(")[0]
    assert f"FROM {name}(%s, %s, %s, %s, %s)" in DEQUEUE_ACQUIRE_SQL
    assert f"GRANT EXECUTE ON FUNCTION {DEQUEUE_ACQUIRE}\n  TO resonate_worker" in (
        STEP_FUNCTIONS_SQL
    )
    assert "SECURITY DEFINER" in STEP_FUNCTIONS_SQL.split(name)[1]
