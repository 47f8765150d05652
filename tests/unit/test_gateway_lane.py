"""The gateway's flow lane answers on the socket exactly as the ASGI way does.

Two gateways run in this test's event loop on loopback, each with its own client
on the SDK's in-process server: one as the gateway runs
(:func:`asyncrpc.gateway.main.config`, flow routes on
:class:`~asyncrpc.gateway.lane.FlowLaneProtocol`), one with uvicorn's own
protocol (every request through :class:`~asyncrpc.gateway.app.GatewayApp` as
ASGI). Both get the same bytes; their answers must match in status, headers
and body (only how the body is framed may differ: a length, or chunks; and the
date).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asyncrpc.gateway.app import create_app
from asyncrpc.gateway.lane import FlowLaneProtocol
from asyncrpc.gateway.main import config
from asyncrpc.gateway.settings import GatewaySettings
from tests.support import http_wire
from tests.support.gateway import local_client

SETTINGS = GatewaySettings(server_url="http://127.0.0.1:1", gateway_id="gateway-lane")
#: What may differ between the two ways: how the body is framed, and the time.
UNCOMPARED = {"content-length", "transfer-encoding", "date"}


def request(
    target: str,
    method: str = "POST",
    extra: str = "",
    version: str = "1.1",
    host: str = "127.0.0.1:5000",
    body: bytes = b"",
) -> bytes:
    head = f"{method} {target} HTTP/{version}\r\nHost: {host}\r\n{extra}"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


async def exchange(port: int, data: bytes, answers: int) -> tuple[list[dict[str, Any]], bool]:
    """Send ``data`` on a new connection; the answers, and whether the peer then closed it."""
    return await http_wire.exchange(
        port, data, answers, ignored=UNCOMPARED, timeout=20, close_wait=0.05
    )


async def serve(lane: bool) -> http_wire.Served:
    settings = config(create_app(SETTINGS, local_client()))
    if not lane:
        settings.http = "httptools"
    return await http_wire.serve(settings)


def with_gateways(test: Callable[[dict[str, int]], Awaitable[None]]) -> None:
    """Run ``test`` with the port of each way ("lane", "asgi"), then stop both gateways."""
    asyncio.run(http_wire.both_ways(serve, test))


CASES: dict[str, tuple[bytes, int]] = {
    "a waiting flow": (request("/await-chain?id=lane-1"), 1),
    "re-attached": (request("/await-chain?id=lane-1"), 1),
    "the flow's fixed id": (request("/fan-out-workflow"), 1),
    "a flow nobody waits for": (request("/detached-chain?id=lane-2"), 1),
    "past the wait: 202": (request("/await-chain?id=lane-3&wait=0"), 1),
    "the id of another flow: 409": (request("/await-chain?id=lane-2"), 1),
    "a bad id": (request("/await-chain?id=bad:id"), 1),
    "a bad wait": (request("/await-chain?wait=1e9"), 1),
    "the path as uvicorn decodes it": (request("/await%2Dchain?id=lane-4"), 1),
    "a body, ignored": (request("/await-chain?id=lane-5", body=b'{"x": 1}'), 1),
    "two flows pipelined": (
        request("/await-chain?id=lane-6") + request("/fan-out-workflow?id=lane-7"),
        2,
    ),
    "a flow, then a read, pipelined": (
        request("/await-chain?id=lane-8") + request("/invocations/lane-8", "GET"),
        2,
    ),
    "a read, then a flow, pipelined": (
        request("/healthz", "GET") + request("/await-chain?id=lane-9"),
        2,
    ),
    "connection: close": (request("/await-chain?id=lane-10", extra="Connection: close\r\n"), 1),
    "HTTP/1.0": (request("/await-chain?id=lane-11", version="1.0"), 1),
    # Such a request takes the ASGI way (a flow reads no body: no 100 Continue).
    "expect 100-continue": (
        request("/fan-out-workflow?id=lane-12", extra="Expect: 100-continue\r\n"),
        1,
    ),
    "another method": (request("/await-chain", "GET"), 1),
    "a trailing slash": (request("/await-chain/"), 1),
    "a page elsewhere": (request("/await-chain?id=x", extra="Origin: http://evil.test\r\n"), 1),
    "a form's body": (request("/await-chain?id=x", extra="Content-Type: text/plain\r\n"), 1),
    "DNS rebinding": (request("/await-chain?id=x", host="evil.test:5000"), 1),
}


def test_both_ways_answer_alike() -> None:
    """Every case in turn, against both gateways (one pair of them: each starts a client)."""

    async def both(ports: dict[str, int]) -> None:
        for case, (data, count) in CASES.items():
            lane = await exchange(ports["lane"], data, count)
            asgi = await exchange(ports["asgi"], data, count)
            assert (case, lane) == (case, asgi)
            assert (case, len(lane[0])) == (case, count)

    with_gateways(both)


def test_the_lane_answers_what_the_flow_answers() -> None:
    """Not only alike: the right answers, a refused page's included."""

    async def check(ports: dict[str, int]) -> None:
        data = request("/await-chain?id=lane-a") + request("/await-chain?id=lane-a&wait=x")
        (done, fine), closed = await exchange(ports["lane"], data, 2)
        assert (done["status"], done["body"]) == (200, b'{"message":3}')
        assert done["headers"]["x-invocation-id"] == "lane-a"
        assert done["headers"]["content-type"] == "application/json"
        assert fine["status"] == 400 and b"wait" in fine["body"]
        assert not closed
        (refused,), _ = await exchange(
            ports["lane"],
            request("/fan-out-workflow?id=b", extra="Sec-Fetch-Site: cross-site\r\n"),
            1,
        )
        assert refused["status"] == 403 and b"another site" in refused["body"]

    with_gateways(check)


def test_the_gateway_runs_its_flow_routes_on_the_lane() -> None:
    protocol = config(create_app(SETTINGS, local_client())).http
    assert isinstance(protocol, type) and issubclass(protocol, FlowLaneProtocol)


def test_an_idle_connection_closes_after_the_keep_alive_timeout_and_a_busy_one_does_not() -> None:
    """uvicorn's keep-alive timeout counts from a connection's last answer, on the lane too."""
    keep_alive = 0.6

    async def check() -> tuple[list[int], bool, float]:
        settings = config(create_app(SETTINGS, local_client()))
        settings.timeout_keep_alive = keep_alive  # type: ignore[assignment]
        port, server, task = await http_wire.serve(settings)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            statuses = []
            for n in range(4):  # 4 x 0.3 s: longer than the timeout, never idle that long
                parsed = http_wire.Answers(UNCOMPARED)
                writer.write(request(f"/await-chain?id=keep-{n}"))
                while not parsed.done:
                    parsed.parser.feed_data(await asyncio.wait_for(reader.read(65536), 20))
                statuses.append(parsed.done[0]["status"])
                await asyncio.sleep(0.3)
            idle_from = time.monotonic()
            closed = await asyncio.wait_for(reader.read(1), 10) == b""
            writer.close()
            return statuses, closed, time.monotonic() - idle_from
        finally:
            server.should_exit = True
            await task

    statuses, closed, idle = asyncio.run(check())
    assert statuses == [200, 200, 200, 200]
    assert closed
    assert keep_alive - 0.3 - 0.05 <= idle < keep_alive + 2.0
