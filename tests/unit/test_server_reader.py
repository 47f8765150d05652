"""The server reader: the embedded server's answers and Resonate's own, decoded alike."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest

from asyncrpc.protocol.errors import ServerRefused, ServerUnavailable, UnknownInvocation
from asyncrpc.protocol.records import PromiseRecord
from asyncrpc.protocol.states import PromiseState
from asyncrpc.readers.server_reader import AsyncServerReader, ServerReader
from harness.isolation import free_port


def encoded(value: Any) -> dict[str, Any]:
    return {"headers": {}, "data": base64.b64encode(json.dumps(value).encode()).decode()}


def wire(id: str, state: str, value: Any = None, **tags: str) -> dict[str, Any]:
    """A promise as Resonate's servers send it: pending ones carry an empty value and settledAt."""
    settled = state != "pending"
    return {
        "id": id,
        "state": state,
        "param": encoded({"func": "foo", "args": [1], "kwargs": {}, "version": 1}),
        "value": encoded(value) if settled else {"headers": {}, "data": None},
        "tags": {"resonate:origin": "r", "resonate:parent": "r", **tags},
        "timeoutAt": 2**40,
        "createdAt": 1000,
        "settledAt": 1500 if settled else None,
    }


class FakeServer:
    """Answers the protocol from a dict of promises, paging searches by two; records requests."""

    def __init__(self, promises: list[dict[str, Any]], flat: bool = False) -> None:
        self.promises = {p["id"]: p for p in promises}
        self.flat = flat  # the embedded server's older shape: status at the top level
        self.requests: list[httpx.Request] = []

    def answer(self, kind: str, status: int, data: Any) -> httpx.Response:
        if self.flat:
            body = {"kind": kind, "status": status, **(data if isinstance(data, dict) else {})}
        else:
            body = {"kind": kind, "head": {"corrId": "x", "status": status}, "data": data}
        return httpx.Response(200, json=body)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        envelope = json.loads(request.content)
        kind, data = envelope["kind"], envelope["data"]
        if kind == "promise.get":
            promise = self.promises.get(data["id"])
            if promise is None:
                return self.answer(kind, 404, "promise not found")
            return self.answer(kind, 200, {"promise": promise})
        if kind == "promise.search":
            matches = [
                p
                for p in sorted(self.promises.values(), key=lambda p: p["id"])
                if all(p["tags"].get(k) == v for k, v in data.get("tags", {}).items())
                and p["id"].startswith(data.get("idPrefix", ""))
                and data.get("state", p["state"]) == p["state"]
            ]
            start = int(data.get("cursor") or 0)
            cursor = str(start + 2) if start + 2 < len(matches) else None
            return self.answer(
                kind, 200, {"promises": matches[start : start + 2], "cursor": cursor}
            )
        return self.answer(kind, 400, "unknown kind")


PROMISES = [
    wire("r", "resolved", 3, **{"resonate:target": "poll://any@service-a"}),
    wire("r:1", "resolved", 2),
    wire("r:2", "pending"),
    wire("other", "rejected", {"__type": "error", "message": "boom"}, **{"resonate:origin": "o"}),
]


@pytest.mark.parametrize("flat", [False, True], ids=["head-status", "top-level-status"])
def test_get_decodes_a_promise_and_none_when_there_is_none(flat: bool) -> None:
    with ServerReader(
        "http://server", transport=httpx.MockTransport(FakeServer(PROMISES, flat))
    ) as reader:
        resolved, pending, rejected = reader.get("r"), reader.get("r:2"), reader.get("other")
        assert reader.get("nobody") is None
    assert resolved == PromiseRecord(
        id="r",
        state=PromiseState.RESOLVED,
        function="foo",
        args=(1,),
        value=3,
        tags=PROMISES[0]["tags"],
        created_at=1000,
        settled_at=1500,
        param={"func": "foo", "args": [1], "kwargs": {}, "version": 1},
        timeout_at=2**40,
    )
    assert resolved.group == "service-a"
    assert pending is not None and (pending.value, pending.settled_at, pending.settled) == (
        None,
        None,
        False,
    )
    assert rejected is not None and rejected.error == "boom"


def test_search_reads_every_page_and_passes_its_filters() -> None:
    server = FakeServer(PROMISES)
    with ServerReader(
        "http://server", token="secret", transport=httpx.MockTransport(server)
    ) as reader:
        assert [p.id for p in reader.search(tags={"resonate:origin": "r"})] == ["r", "r:1", "r:2"]
        assert [p.id for p in reader.search(id_prefix="r:", state=PromiseState.PENDING)] == ["r:2"]
    assert len(server.requests) == 3  # two pages, then one
    assert all(r.headers["Authorization"] == "Bearer secret" for r in server.requests)


def test_call_graph_of_an_unknown_invocation() -> None:
    with ServerReader(
        "http://server", transport=httpx.MockTransport(FakeServer(PROMISES))
    ) as reader:
        assert [child.id for child in reader.call_graph("r").children] == ["r:1", "r:2"]
        with pytest.raises(UnknownInvocation, match="no invocation with id 'nobody'"):
            reader.call_graph("nobody")


def test_refusals_and_silence_are_errors_in_words() -> None:
    def unauthorized(_: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"head": {"status": 401}, "data": "unauthorized"})

    def broken(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"head": {"status": 500}, "data": "the store is closed"})

    unauthorized_reader = ServerReader("http://server", transport=httpx.MockTransport(unauthorized))
    with unauthorized_reader, pytest.raises(ServerRefused, match="RESONATE_TOKEN"):
        unauthorized_reader.get("r")
    broken_reader = ServerReader("http://server", transport=httpx.MockTransport(broken))
    failed = r"promise.search failed \(500\): the store is closed"
    with broken_reader, pytest.raises(ServerRefused, match=failed):
        broken_reader.search()
    url = f"http://127.0.0.1:{free_port()}"
    with ServerReader(url, timeout=1) as reader:
        with pytest.raises(ServerUnavailable, match="unreachable"):
            reader.get("r")
        assert not reader.answers()


def test_acquisitions_on_resonate_pg_are_unknown_without_a_round_trip() -> None:
    """resonate.sql keeps no record of a task's acquisitions (it answers 501): the reader says
    so at once, so a timeline of many steps asks the database nothing for them, even when it
    does not answer."""
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/resonate?connect_timeout=1"
    with ServerReader(url, timeout=1) as reader:
        assert reader.acquisitions("r.1") is None
        with pytest.raises(ServerUnavailable):
            reader.task("r.1")

    async def both() -> None:
        async with AsyncServerReader(url, timeout=1) as reader:
            assert await reader.acquisitions("r.1") is None

    asyncio.run(both())
