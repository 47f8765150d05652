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
from uvicorn.server import ServerState

from asyncrpc.server.app import PUSH_EXTENSION, ServerApp
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


async def serve(lane: bool, keep_alive_s: float | None = None) -> http_wire.Served:
    app = ServerApp(Engine(Store(":memory:"), clock=lambda: 1_000_000), TOKEN)
    config = uvicorn_config(app, app)
    if not lane:
        config.http = "httptools"
    if keep_alive_s is not None:
        config.timeout_keep_alive = keep_alive_s  # type: ignore[assignment]
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
    # uvicorn's 400, and the connection closed, whichever way the requests before went.
    "malformed": (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: x\r\n\r\n", 1),
    "an upgrade that is not supported": (
        post(GET, extra=AUTH + "Connection: upgrade\r\nUpgrade: h2c\r\n"),
        1,
    ),
    "a post, then a websocket upgrade, pipelined": (
        post(GET)
        + b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        + b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        2,
    ),
    "a post, then other routes with a query, pipelined": (
        post(CREATE)
        + b"GET /healthz?x=%41 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        + b"GET /no%20such HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        3,
    ),
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


# -- the protocol in process: a stand-in transport, a lane and an app that answer -----------

ANSWER = (200, [(b"content-type", b"application/json")], b"{}")


class Transport:
    """A connection's transport that keeps what is written and whether it was closed."""

    def __init__(self) -> None:
        self.written = b""
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8001), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def answers(self) -> int:
        return self.written.count(b"HTTP/1.1 ")


class Answering:
    """The lane and the ASGI app of a connection: each request answered ``delay`` s after it
    came, every ASGI scope kept."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.scopes: list[dict[str, Any]] = []

    def post(self, headers: Any, body: bytes, respond: Any, *args: Any) -> None:
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, respond, *ANSWER)
        else:
            respond(*ANSWER)

    def closed(self, connection: object) -> None:
        pass

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.scopes.append(scope)
        while (await receive()).get("more_body"):
            pass
        await asyncio.sleep(self.delay)
        status, headers, body = ANSWER
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def connect(lane: bool, answering: Answering, keep_alive_s: float = 5.0) -> tuple[Any, Transport]:
    """A protocol on a stand-in connection: the fast lane's, or uvicorn's own."""
    config = uvicorn_config(answering, answering)
    config.lifespan = "off"
    config.timeout_keep_alive = keep_alive_s  # type: ignore[assignment]
    if not lane:
        config.http = "httptools"
    config.load()
    protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


async def until(condition: Callable[[], bool], within: float = 5.0) -> float:
    """Wait until ``condition`` holds; how long that took (fails past ``within`` s)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.005)
    return loop.time() - started


def test_requests_off_the_lane_get_uvicorns_own_scope() -> None:
    """The lane builds no scope for its requests; the others get the one uvicorn makes
    (a request's own headers, path, query and version, pipelined behind the lane's)."""
    data = (
        post(GET)
        + b"GET /poll/g/a%20b?x=1&y HTTP/1.1\r\nHost: h\r\nX-Thing: B\r\n\r\n"
        + post(GET)
        + b"PUT /here HTTP/1.0\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
    )

    async def scopes(lane: bool) -> list[dict[str, Any]]:
        answering = Answering()
        protocol, transport = connect(lane, answering)
        protocol.data_received(data)
        await until(lambda: transport.answers() == 4 and transport.closing)
        protocol.connection_lost(None)
        return answering.scopes

    async def both() -> None:
        lane, asgi = await scopes(lane=True), await scopes(lane=False)
        assert [scope["method"] for scope in asgi] == ["POST", "GET", "POST", "PUT"]
        assert "extensions" not in asgi[1]
        assert PUSH_EXTENSION in lane[0].pop("extensions")
        # The second post is pipelined behind the poll, still being answered: the ASGI way.
        assert lane == asgi[1:]
        assert lane[2]["http_version"] == "1.0"
        assert (lane[0]["path"], lane[0]["query_string"]) == ("/poll/g/a b", b"x=1&y")
        assert lane[0]["headers"] == [(b"host", b"h"), (b"x-thing", b"B")]

    asyncio.run(both())


KEEP_ALIVE_S = 0.4
#: A request that has come in part: a connection reading one is not idle.
PART = b"POST / HTTP/1.1\r\nHost: 127.0.0.1:8001\r\n"


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "asgi"])
def test_a_connection_is_closed_once_idle_for_the_keep_alive_timeout(lane: bool) -> None:
    """Idle from its last answer on, not while requests keep coming, are read or answered."""

    async def run() -> None:
        answering = Answering()
        protocol, transport = connect(lane, answering, KEEP_ALIVE_S)
        # Requests one after another for three times the timeout: open throughout.
        for count in range(1, 13):
            protocol.data_received(post(GET))
            await until(lambda: transport.answers() == count)  # noqa: B023
            await asyncio.sleep(KEEP_ALIVE_S / 4)
        assert not transport.closing
        idle = await until(lambda: transport.closing)
        assert KEEP_ALIVE_S / 2 <= idle + KEEP_ALIVE_S / 4 <= KEEP_ALIVE_S + 2
        # A request answered later than the timeout: the connection waits for it.
        protocol, transport = connect(lane, answering, KEEP_ALIVE_S)
        answering.delay = KEEP_ALIVE_S * 2
        protocol.data_received(post(GET))
        await until(lambda: transport.answers() == 1)
        assert not transport.closing
        await until(lambda: transport.closing)
        # A request that has come in part stops the clock, as uvicorn's data_received does.
        protocol, transport = connect(lane, answering, KEEP_ALIVE_S)
        answering.delay = 0
        protocol.data_received(post(GET))
        await until(lambda: transport.answers() == 1)
        protocol.data_received(PART)
        await asyncio.sleep(KEEP_ALIVE_S * 2)
        assert not transport.closing
        rest = post(GET)[len(PART) :]
        protocol.data_received(rest)
        await until(lambda: transport.answers() == 2)
        await until(lambda: transport.closing)
        protocol.connection_lost(None)

    asyncio.run(run())
