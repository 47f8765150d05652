"""`GET /metrics` of the server and the gateway, in-process, read with prometheus_client's parser.

The server's ASGI app runs on an engine with an in-memory store and a clock the
test moves; the gateway's runs its flows on the SDK's in-process server. Every
value is read back from the text a scrape gets, before and after requests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from asyncrpc.gateway.app import create_app
from asyncrpc.gateway.metrics import GatewayMetrics, Outcome
from asyncrpc.gateway.query import InvalidQuery
from asyncrpc.gateway.settings import GatewaySettings
from asyncrpc.lesson.topology import FLOWS
from asyncrpc.protocol.answers import envelope
from asyncrpc.protocol.errors import (
    InvalidInvocationId,
    InvocationConflict,
    InvocationFailed,
    ServerRefused,
    ServerUnavailable,
)
from asyncrpc.protocol.records import PromiseRecord
from asyncrpc.protocol.states import PromiseState
from asyncrpc.runtime.metrics import AnswerTally
from asyncrpc.server.app import ServerApp
from asyncrpc.server.engine import Engine
from asyncrpc.server.store import Store
from tests.support.gateway import local_client

FAR = 10**15


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


# -- the server -------------------------------------------------------------------


class InProcessServer:
    """The server's ASGI app on an in-memory store, asked through httpx."""

    def __init__(self, token: str | None = None) -> None:
        self.now = 1_000_000
        self.engine = Engine(Store(":memory:"), clock=lambda: self.now)
        self.app = ServerApp(self.engine, token)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def __aenter__(self) -> InProcessServer:
        transport = httpx.ASGITransport(app=self.app)
        self.http = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8001")
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()

    async def send(self, kind: str, **data: Any) -> int:
        response = await self.http.post(
            "/", json=envelope(kind, None, **data), headers=self.headers
        )
        return response.status_code

    async def metrics(self) -> str:
        response = await self.http.get("/metrics", headers=self.headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        return response.text


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_the_server_counts_requests_by_kind_and_status_with_their_latency() -> None:
    async def scenario() -> tuple[str, str]:
        async with InProcessServer() as server:
            before = await server.metrics()
            assert await server.send("promise.create", id="p", timeoutAt=FAR) == 200
            assert await server.send("promise.get", id="p") == 200
            assert await server.send("promise.get", id="nobody") == 404
            assert await server.send("no.such.kind") == 501
            raw = await server.http.post("/", content=b"not json")
            assert raw.status_code == 400
            return before, await server.metrics()

    before, after = run(scenario())
    requests = "asyncrpc_server_requests_total"
    assert value(before, requests, kind="promise.get", status="200") is None
    assert value(after, requests, kind="promise.create", status="200") == 1
    assert value(after, requests, kind="promise.get", status="200") == 1
    assert value(after, requests, kind="promise.get", status="404") == 1
    # A kind the server does not know, and a body that is no request, grow no series of their own.
    assert value(after, requests, kind="other", status="501") == 1
    assert value(after, requests, kind="invalid", status="400") == 1
    latency = "asyncrpc_server_request_duration_seconds"
    assert value(after, f"{latency}_count", kind="promise.get") == 2
    assert value(after, f"{latency}_bucket", kind="promise.get", le="+Inf") == 2
    assert value(after, f"{latency}_sum", kind="promise.get") > 0  # type: ignore[operator]
    assert value(after, "process_cpu_seconds_total") is not None


def test_the_servers_gauges_are_counted_from_its_state_when_scraped() -> None:
    async def scenario() -> list[str]:
        async with InProcessServer() as server:
            texts = [await server.metrics()]
            target = {"resonate:target": "poll://any@service-b"}
            await server.send("promise.create", id="work", timeoutAt=FAR, tags=target)
            await server.send("promise.create", id="soon", timeoutAt=server.now + 10)
            await server.send("promise.create", id="done", timeoutAt=FAR)
            await server.send("promise.settle", id="done", state="resolved")
            stream = server.engine.router.connect("service-b", "b-1")
            server.engine.router.connect("service-b", "b-2")
            texts.append(await server.metrics())
            server.now += 20  # `soon` is past its timeout: it reads as timed out
            server.engine.router.disconnect(stream)
            texts.append(await server.metrics())
            return texts

    empty, busy, later = run(scenario())
    promises, tasks, streams = (
        "asyncrpc_server_promises",
        "asyncrpc_server_tasks",
        "asyncrpc_server_poll_streams",
    )
    for state in ("pending", "resolved", "rejected", "rejected_canceled", "rejected_timedout"):
        assert value(empty, promises, state=state) == 0
    assert value(busy, promises, state="pending") == 2
    assert value(busy, promises, state="resolved") == 1
    assert value(busy, tasks, state="pending") == 1
    assert value(busy, streams, group="service-b") == 2
    assert value(later, promises, state="pending") == 1
    assert value(later, promises, state="rejected_timedout") == 1
    assert value(later, streams, group="service-b") == 1


def test_with_a_token_the_servers_metrics_want_it() -> None:
    async def scenario() -> tuple[int, int, int]:
        async with InProcessServer(token="s3cret") as server:
            bare = await server.http.get("/metrics")
            wrong = await server.http.get("/metrics", headers={"Authorization": "Bearer no"})
            good = await server.http.get("/metrics", headers=server.headers)
            return bare.status_code, wrong.status_code, good.status_code

    assert run(scenario()) == (401, 401, 200)


def test_two_servers_in_one_process_count_apart() -> None:
    async def scenario() -> tuple[str, str]:
        async with InProcessServer() as one, InProcessServer() as other:
            await one.send("promise.get", id="x")
            return await one.metrics(), await other.metrics()

    one, other = run(scenario())
    assert value(one, "asyncrpc_server_requests_total", kind="promise.get", status="404") == 1
    assert value(other, "asyncrpc_server_requests_total", kind="promise.get", status="404") is None


def test_the_tally_puts_each_latency_in_its_bucket() -> None:
    tally = AnswerTally(
        counter="c",
        counter_help="c",
        labels=("a", "b"),
        histogram="h",
        histogram_help="h",
        buckets=(0.1, 1.0),
    )
    for seconds in (0.05, 0.1, 0.5, 3.0):
        tally.record("x", 200, seconds)
    tally.record("x", 500, 0.2)
    families = {family.name: family for family in tally.collect()}
    counts = {tuple(s.labels.values()): s.value for s in families["c"].samples}
    assert counts == {("x", "200"): 4, ("x", "500"): 1}
    buckets = {s.labels["le"]: s.value for s in families["h"].samples if s.name.endswith("_bucket")}
    # Cumulative, and a latency equal to a bound counts in that bound's bucket.
    assert buckets == {"0.1": 2, "1.0": 4, "+Inf": 5}
    assert tally.count("x", 200) == 4


# -- the gateway --------------------------------------------------------------------

SETTINGS = GatewaySettings(server_url="http://127.0.0.1:1", gateway_id="gateway-test")
#: Where a client on this machine reaches the gateway (it answers loopback Host names only).
BASE = f"http://127.0.0.1:{SETTINGS.port}"


@pytest.fixture
def gateway() -> Iterator[TestClient]:
    with TestClient(create_app(SETTINGS, local_client()), base_url=BASE) as client:
        yield client


def test_the_gateway_counts_invocations_by_flow_and_outcome(gateway: TestClient) -> None:
    invocations = "asyncrpc_gateway_invocations_total"
    before = gateway.get("/metrics").text
    assert value(before, invocations, flow="await-chain", outcome="resolved") is None
    assert value(before, "asyncrpc_gateway_server_connected") == 1

    assert gateway.post("/await-chain", params={"id": "m-1"}).json() == {"message": 3}
    assert gateway.post("/await-chain", params={"id": "m-2"}).status_code == 200
    assert gateway.post("/detached-chain", params={"id": "m-3"}).status_code == 200
    assert gateway.post("/await-chain", params={"id": "bad id!"}).status_code == 400
    assert gateway.post("/await-chain", params={"wait": "soon"}).status_code == 400
    # The id of another flow's invocation.
    assert gateway.post("/fan-out-workflow", params={"id": "m-1"}).status_code == 409

    after = gateway.get("/metrics").text
    assert value(after, invocations, flow="await-chain", outcome="resolved") == 2
    assert value(after, invocations, flow="detached-chain", outcome="started") == 1
    assert value(after, invocations, flow="await-chain", outcome="invalid") == 2
    assert value(after, invocations, flow="fan-out", outcome="conflict") == 1
    latency = "asyncrpc_gateway_invocation_duration_seconds"
    assert value(after, f"{latency}_count", flow="await-chain") == 4
    assert value(after, f"{latency}_sum", flow="await-chain") > 0  # type: ignore[operator]
    # Reading an invocation is not an invocation.
    gateway.get("/invocations/m-1")
    assert value(gateway.get("/metrics").text, f"{latency}_count", flow="await-chain") == 4


def test_a_gateway_call_still_running_at_its_wait_counts_as_pending() -> None:
    with TestClient(create_app(SETTINGS, local_client(delay=0.5)), base_url=BASE) as gateway:
        assert gateway.post("/await-chain", params={"id": "slow", "wait": 0}).status_code == 202
        text = gateway.get("/metrics").text
    assert value(text, "asyncrpc_gateway_invocations_total", flow="await-chain", outcome="pending")


def test_the_gateway_says_when_its_link_to_the_server_is_down() -> None:
    with TestClient(create_app(SETTINGS, local_client(connected=False)), base_url=BASE) as gateway:
        assert value(gateway.get("/metrics").text, "asyncrpc_gateway_server_connected") == 0


def test_with_a_token_the_gateways_metrics_want_it() -> None:
    settings = GatewaySettings(server_url="http://127.0.0.1:1", gateway_id="g", token="s3cret")
    with TestClient(create_app(settings, local_client()), base_url=BASE) as gateway:
        refused = gateway.get("/metrics")
        assert refused.status_code == 401
        assert "unauthorized" in json.loads(refused.text)["error"]
        good = gateway.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert good.status_code == 200
        assert value(good.text, "asyncrpc_gateway_server_connected") == 1


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (InvocationFailed(PromiseRecord("x", PromiseState.REJECTED)), Outcome.REJECTED),
        (InvalidInvocationId("bad"), Outcome.INVALID),
        (InvalidQuery("bad"), Outcome.INVALID),
        (InvocationConflict("taken"), Outcome.CONFLICT),
        (ServerUnavailable("gone"), Outcome.UNAVAILABLE),
        (ServerRefused("no"), Outcome.UNAVAILABLE),
        (RuntimeError("surprise"), Outcome.ERROR),
    ],
)
def test_a_flow_routes_error_is_counted_by_what_it_says(error: Exception, outcome: Outcome) -> None:
    metrics = GatewayMetrics(lambda: True)
    flow = FLOWS["await-chain"]

    async def fails() -> None:
        raise error

    with pytest.raises(type(error)):
        run(metrics.counted(flow, fails)())
    assert metrics.invocations.count(flow.name, outcome) == 1
