"""The server's fast lane answers ``POST /`` exactly as the ASGI app does.

Two servers run in this test's event loop on loopback, each with a fresh
engine on the same fixed clock: one with uvicorn's own protocol (every
request through :class:`~asyncrpc.server.app.ServerApp` as ASGI), one with
:class:`~asyncrpc.server.fast_lane.FastLaneProtocol`. Both get the same bytes;
their answers must match in status, headers and body (only how the body is
framed may differ: a length, or chunks).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from asyncrpc.server.app import ServerApp
from asyncrpc.server.engine import Engine
from asyncrpc.server.main import uvicorn_config
from asyncrpc.server.protocol import MAX_BODY_BYTES
from asyncrpc.server.store import Store
from tests.support import http_wire

TOKEN = "lane-token"
AUTH = f"Authorization: Bearer {TOKEN}\r\n"
#: How the body is framed, which may differ between the two ways.
FRAMING = {"content-length", "transfer-encoding"}


def envelope(kind: str, **data: Any) -> bytes:
    return json.dumps(
        {"kind": kind, "head": {"corrId": "c1", "version": ""}, "data": data}
    ).encode()


def post(
    body: bytes,
    extra: str = AUTH,
    version: str = "1.1",
    host: str = "127.0.0.1:8001",
    content_type: str = "application/json",
) -> bytes:
    head = f"POST / HTTP/{version}\r\nHost: {host}\r\nContent-Type: {content_type}\r\n{extra}"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


CREATE = envelope("promise.create", id="p1", timeoutAt=10**12, param={}, tags={})
GET = envelope("promise.get", id="p1")
LISTEN = envelope("promise.register_listener", awaited="p1", address="poll://uni@gw/gw-1")

#: What a web page elsewhere sends (a create, with the token even): refused, and the status.
FROM_A_PAGE: dict[str, tuple[bytes, int]] = {
    "cross-site": (post(CREATE, extra=AUTH + "Sec-Fetch-Site: cross-site\r\n"), 403),
    "foreign origin": (post(CREATE, extra=AUTH + "Origin: http://evil.test\r\n"), 403),
    "null origin": (post(CREATE, extra=AUTH + "Origin: null\r\n"), 403),
    "a form's body": (post(CREATE, content_type="text/plain;charset=UTF-8"), 415),
    "foreign host (DNS rebinding)": (post(CREATE, host="evil.test:8001"), 403),
    "no token": (post(CREATE, extra=""), 401),
}


async def exchange(port: int, data: bytes, answers: int) -> tuple[list[dict[str, Any]], bool]:
    """Send ``data`` on a new connection; the answers, and whether the peer then closed it."""
    return await http_wire.exchange(
        port, data, answers, ignored=FRAMING, timeout=10, close_wait=0.2
    )


async def serve(lane: bool) -> http_wire.Served:
    app = ServerApp(Engine(Store(":memory:"), clock=lambda: 1_000_000), TOKEN)
    config = uvicorn_config(app, app)
    if not lane:
        config.http = "httptools"
    return await http_wire.serve(config)


async def with_servers(test: Callable[[dict[str, int]], Awaitable[None]]) -> None:
    """Run ``test`` with the port of each way ("lane", "asgi"), then stop both servers."""
    await http_wire.both_ways(serve, test)


CASES: dict[str, tuple[bytes, int]] = {
    "create then get, one connection, pipelined": (post(CREATE) + post(GET), 2),
    # The listen is applied after its turn's commit; the get behind it waits for it.
    "create, listen, get, not JSON, pipelined": (
        post(CREATE) + post(LISTEN) + post(GET) + post(b"{nope"),
        4,
    ),
    # A refusal made at once still leaves behind the listen's answer.
    "create, listen, no token, pipelined": (post(CREATE) + post(LISTEN) + post(GET, extra=""), 3),
    "unknown kind": (post(envelope("promise.nothing")), 1),
    "not JSON": (post(b"{nope"), 1),
    "no token": (post(GET, extra=""), 1),
    "wrong token": (post(GET, extra="Authorization: Bearer other\r\n"), 1),
    "body too large": (post(b" " * (MAX_BODY_BYTES + 1)), 1),
    "then a health check, pipelined": (
        post(CREATE) + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        2,
    ),
    "a health check, then a post, pipelined": (
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + post(GET),
        2,
    ),
    "connection: close": (post(GET, extra=AUTH + "Connection: close\r\n"), 1),
    "HTTP/1.0": (post(GET, version="1.0"), 1),
    # 100 Continue, then the answer: such a request takes the ASGI way.
    "expect 100-continue": (post(GET, extra=AUTH + "Expect: 100-continue\r\n"), 2),
    **{f"a web page: {name}": (data, 1) for name, (data, _) in FROM_A_PAGE.items()},
}


@pytest.mark.parametrize("case", list(CASES))
def test_both_ways_answer_alike(case: str) -> None:
    data, count = CASES[case]

    async def both(ports: dict[str, int]) -> None:
        lane = await exchange(ports["lane"], data, count)
        asgi = await exchange(ports["asgi"], data, count)
        assert lane == asgi
        assert len(lane[0]) == count

    asyncio.run(with_servers(both))


def test_pipelined_answers_leave_in_the_order_of_the_requests() -> None:
    creates = b"".join(
        post(envelope("promise.create", id=f"q{n}", timeoutAt=10**12, param={}, tags={}))
        for n in range(20)
    )

    async def lane(ports: dict[str, int]) -> None:
        answers, _ = await exchange(ports["lane"], creates, 20)
        ids = [json.loads(a["body"])["data"]["promise"]["id"] for a in answers]
        assert ids == [f"q{n}" for n in range(20)]
        assert {a["status"] for a in answers} == {200}

    asyncio.run(with_servers(lane))


@pytest.mark.parametrize("case", list(FROM_A_PAGE))
def test_the_fast_lane_refuses_a_page_elsewhere_and_a_missing_token(case: str) -> None:
    data, status = FROM_A_PAGE[case]

    async def lane(ports: dict[str, int]) -> None:
        (refused,), _ = await exchange(ports["lane"], data, 1)
        assert refused["status"] == status
        assert "error" in json.loads(refused["body"])
        (after,), _ = await exchange(ports["lane"], post(GET), 1)
        assert after["status"] == 404  # the refused create created nothing

    asyncio.run(with_servers(lane))


def test_headers_that_passed_once_are_checked_again_when_one_differs() -> None:
    """The guard's and the token's verdicts are kept per set of headers: one more header,
    or another token, is a set of its own, checked again."""
    data = (
        post(CREATE)
        + post(GET, extra=AUTH + "Origin: http://evil.test\r\n")
        + post(GET, extra="Authorization: Bearer other\r\n")
        + post(GET, host="evil.test:8001")
        + post(GET)
    )

    async def both(ports: dict[str, int]) -> None:
        for port in ports.values():
            answers, _ = await exchange(port, data, 5)
            assert [a["status"] for a in answers] == [200, 403, 401, 403, 200]

    asyncio.run(with_servers(both))


def test_metrics_count_the_requests_the_fast_lane_answers() -> None:
    scrape = f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:8001\r\n{AUTH}\r\n".encode()

    async def lane(ports: dict[str, int]) -> None:
        answers, _ = await exchange(ports["lane"], post(CREATE) + post(GET) + post(b"{nope"), 3)
        assert [a["status"] for a in answers] == [200, 200, 400]
        (scraped,), _ = await exchange(ports["lane"], scrape, 1)
        found = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(scraped["body"].decode())
            for sample in family.samples
        }
        counted = "asyncrpc_server_requests_total"
        assert found[(counted, (("kind", "promise.create"), ("status", "200")))] == 1
        assert found[(counted, (("kind", "promise.get"), ("status", "200")))] == 1
        assert found[(counted, (("kind", "invalid"), ("status", "400")))] == 1
        latency = "asyncrpc_server_request_duration_seconds_count"
        assert found[(latency, (("kind", "promise.create"),))] == 1

    asyncio.run(with_servers(lane))


async def read_events(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    """The first ``count`` ``data:`` events of a poll stream (head and chunk framing skipped)."""
    seen = b""
    async with asyncio.timeout(10):
        while seen.count(b"data: ") < count or not seen.endswith(b"\r\n"):
            chunk = await reader.read(65536)
            assert chunk, "the stream ended"
            seen += chunk
    return [line for line in seen.split(b"\n") if line.startswith(b"data: ")]


def test_a_commit_writes_its_messages_in_its_own_turn_behind_the_lane() -> None:
    """Both ways push alike; behind the lane the router writes them without the queue."""
    poll = f"GET /poll/g/p1 HTTP/1.1\r\nHost: 127.0.0.1:8001\r\n{AUTH}\r\n".encode()
    target = {"resonate:target": "poll://any@g"}
    creates = [
        envelope("promise.create", id=f"t{n}", timeoutAt=10**12, param={}, tags=target)
        for n in range(3)
    ]

    async def run(port: int, app: ServerApp) -> list[bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(poll)
        try:
            async with asyncio.timeout(10):
                while not app.engine.router.streams():
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # the stream's head and first line are written
            for create in creates:
                (answer,), _ = await exchange(port, post(create), 1)
                assert answer["status"] == 200
            return await read_events(reader, len(creates))
        finally:
            writer.close()

    async def both() -> None:
        events = {}
        queued = {}
        for name in ("lane", "asgi"):
            port, server, task = await serve(lane=name == "lane")
            app = server.config.app
            try:
                events[name] = await run(port, app)
                queued[name] = app.engine.router.queued
            finally:
                server.should_exit = True
                await task
        assert events["lane"] == events["asgi"]
        assert [json.loads(e[len(b"data: ") :])["kind"] for e in events["lane"]] == ["execute"] * 3
        assert queued == {"lane": 0, "asgi": 3}

    asyncio.run(both())
