"""The blocking readers and their event-loop twins offer the same methods, alike.

Each pair is written twice (once with ``await``); these tests keep the two
from drifting apart: the same methods, in the same order, with the same
parameters, and the same answers from the same server.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
from typing import Any

import httpx
import pytest

from asyncrpc.protocol.errors import UnknownInvocation
from asyncrpc.protocol.records import AcquireCause, TaskAcquisition, TaskRecord
from asyncrpc.readers.http import AsyncHttpEndpoint, HttpEndpoint
from asyncrpc.readers.postgres import AsyncPostgresTables, PostgresTables
from asyncrpc.readers.server_reader import AsyncServerReader, ServerReader

#: A blocking method's name -> its twin's, where the two differ.
ASYNC_NAMES = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__"}
#: The dunder methods that belong to the public API.
PUBLIC_DUNDERS = {"__init__", "__enter__", "__exit__", "__aenter__", "__aexit__"}

TWINS = [
    (ServerReader, AsyncServerReader),
    (HttpEndpoint, AsyncHttpEndpoint),
    (PostgresTables, AsyncPostgresTables),
]


def public_methods(cls: type) -> list[str]:
    """The class's own public methods, in the order they are written."""
    return [
        name
        for name, value in vars(cls).items()
        if callable(value) and (not name.startswith("_") or name in PUBLIC_DUNDERS)
    ]


def parameters(method: Any) -> list[tuple[str, Any, Any, str]]:
    """Each parameter's name, kind, default and annotation (an ``Async`` type as its twin's)."""
    return [
        (p.name, p.kind, p.default, str(p.annotation).replace("Async", ""))
        for p in inspect.signature(method).parameters.values()
    ]


@pytest.mark.parametrize("blocking, looped", TWINS, ids=lambda cls: cls.__name__)
def test_twins_have_the_same_methods_in_the_same_order(blocking: type, looped: type) -> None:
    twin_names = [ASYNC_NAMES.get(name, name) for name in public_methods(blocking)]
    assert twin_names == public_methods(looped)


@pytest.mark.parametrize("blocking, looped", TWINS, ids=lambda cls: cls.__name__)
def test_twins_take_the_same_parameters(blocking: type, looped: type) -> None:
    for name in public_methods(blocking):
        mine, twin = getattr(blocking, name), getattr(looped, ASYNC_NAMES.get(name, name))
        assert parameters(mine) == parameters(twin), name
        returns = inspect.signature(mine).return_annotation
        assert returns == inspect.signature(twin).return_annotation, name
        assert not inspect.iscoroutinefunction(mine), name
        assert inspect.iscoroutinefunction(twin) or name == "__init__", name


def test_both_readers_have_the_whole_api() -> None:
    expected = ["__init__", "__enter__", "__exit__", "close", "get", "search", "call_graph"]
    more = ["task_state", "task", "acquisitions", "schedules", "answers"]
    assert public_methods(ServerReader) == [*expected, *more]


def encoded(value: Any) -> dict[str, Any]:
    return {"headers": {}, "data": base64.b64encode(json.dumps(value).encode()).decode()}


def wire(promise_id: str, parent: str) -> dict[str, Any]:
    return {
        "id": promise_id,
        "state": "resolved",
        "param": encoded({"func": "foo", "args": [], "kwargs": {}, "version": 1}),
        "value": encoded(7),
        "tags": {"resonate:origin": "r", "resonate:parent": parent},
        "timeoutAt": 2**40,
        "createdAt": 1000,
        "settledAt": 1500,
    }


PROMISES = {"r": wire("r", "r"), "r:1": wire("r:1", "r")}
SCHEDULES = [
    {
        "id": name,
        "cron": "0 * * * *",
        "promiseId": "{{.id}}.{{.timestamp}}",
        "promiseTimeout": 60_000,
        "promiseParam": {"headers": {}},
        "promiseTags": {"resonate:target": "poll://any@service-a"},
        "nextRunAt": 3_600_000,
        "createdAt": 1_000,
    }
    for name in ("hourly-a", "hourly-b", "nightly")
]
ACQUIRED = [
    {"version": 1, "pid": "b-1-aa", "at": 10, "cause": "first"},
    {"version": 2, "pid": "b-1-bb", "at": 20, "cause": "lease", "previous": "b-1-aa"},
]


def server(request: httpx.Request) -> httpx.Response:
    """Answers ``promise.get``, one page of ``promise.search``, ``task.get`` and health."""
    if request.url.path == "/healthz":
        return httpx.Response(200, json={"status": "ok"})
    sent = json.loads(request.content)
    kind, data = sent["kind"], sent["data"]
    if kind == "promise.get" and data["id"] in PROMISES:
        status, answer = 200, {"promise": PROMISES[data["id"]]}
    elif kind == "promise.search":
        status, answer = 200, {"promises": list(PROMISES.values()), "cursor": None}
    elif kind == "schedule.search":  # a page of two, as a server with limit 2 answers
        after = [s for s in SCHEDULES if s["id"] > data.get("cursor", "")]
        page = {"schedules": after[:2]}
        status, answer = 200, {**page, "cursor": after[1]["id"]} if len(after) > 2 else page
    elif kind == "task.acquisitions" and data["id"] == "r:1":
        status, answer = 200, {"acquisitions": ACQUIRED}
    elif kind == "task.get" and data["id"] in PROMISES:
        status, answer = 200, {"task": {"id": data["id"], "state": "acquired", "pid": "b-1"}}
    else:
        status, answer = 404, "not found"
    return httpx.Response(200, json={"kind": kind, "head": {"status": status}, "data": answer})


def blocking_reads() -> list[Any]:
    with ServerReader("http://server", transport=httpx.MockTransport(server)) as reader:
        graph = reader.call_graph("r")
        with pytest.raises(UnknownInvocation):
            reader.call_graph("nobody")
        return [
            reader.get("r"),
            reader.get("nobody"),
            reader.search(tags={"resonate:origin": "r"}),
            [child.id for child in graph.children],
            reader.task_state("r:1"),
            reader.task_state("nobody"),
            reader.task("r:1"),
            reader.task("nobody"),
            reader.acquisitions("r:1"),
            reader.acquisitions("nobody"),
            [s.id for s in reader.schedules()],
            [s.id for s in reader.schedules("hourly-*")],
            reader.answers(),
        ]


async def looped_reads() -> list[Any]:
    async with AsyncServerReader("http://server", transport=httpx.MockTransport(server)) as reader:
        graph = await reader.call_graph("r")
        with pytest.raises(UnknownInvocation):
            await reader.call_graph("nobody")
        return [
            await reader.get("r"),
            await reader.get("nobody"),
            await reader.search(tags={"resonate:origin": "r"}),
            [child.id for child in graph.children],
            await reader.task_state("r:1"),
            await reader.task_state("nobody"),
            await reader.task("r:1"),
            await reader.task("nobody"),
            await reader.acquisitions("r:1"),
            await reader.acquisitions("nobody"),
            [s.id for s in await reader.schedules()],
            [s.id for s in await reader.schedules("hourly-*")],
            await reader.answers(),
        ]


def test_twins_read_the_same_server_alike() -> None:
    reads = blocking_reads()
    assert reads[1:5] == [None, reads[2], ["r:1"], "acquired"]
    assert reads[5:8] == [None, TaskRecord("r:1", "acquired", pid="b-1"), None]
    assert reads[8] == (
        TaskAcquisition(1, "b-1-aa", 10, AcquireCause.FIRST),
        TaskAcquisition(2, "b-1-bb", 20, AcquireCause.LEASE, "b-1-aa"),
    )
    assert reads[9:] == [None, ["hourly-a", "hourly-b", "nightly"], ["hourly-a", "hourly-b"], True]
    assert reads[0] is not None and reads[0].value == 7
    assert asyncio.run(looped_reads()) == reads
