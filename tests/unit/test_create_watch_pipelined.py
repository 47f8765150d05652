"""A start's listen pipelined behind its create, against the real server in this test's loop.

With ``listen_address``, :class:`~asyncrpc.network.create_watch.CreateWatch`
sends a watched create and a ``promise.register_listener`` for it together
(:meth:`~asyncrpc.network.lean_http.LeanHttpNetwork.send_together`: one
connection, one write), and answers the SDK's own listen, which follows, with
the server's answer to that one. The server reads the two in order, so the
listen finds the promise the create made.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

from asyncrpc.network.create_watch import CreateWatch
from asyncrpc.network.lean_http import LeanHttpNetwork
from asyncrpc.server.app import ServerApp
from asyncrpc.server.engine import Engine
from asyncrpc.server.main import uvicorn_config
from asyncrpc.server.store import Store

ADDRESS = "poll://uni@gateway/gateway-1"
TAG = {"asyncrpc:request": "r-1"}


def envelope(kind: str, corr_id: str, **data: Any) -> str:
    return json.dumps({"kind": kind, "head": {"corrId": corr_id, "version": ""}, "data": data})


def create(promise_id: str, corr_id: str = "c-create") -> str:
    return envelope(
        "promise.create", corr_id, id=promise_id, timeoutAt=10**15, param={}, tags={"a": "b"}
    )


def listen(promise_id: str, corr_id: str = "c-listen", address: str = ADDRESS) -> str:
    return envelope("promise.register_listener", corr_id, awaited=promise_id, address=address)


class Recorded:
    """The lean client, recording what goes to the server: (kind, corrId) per request."""

    def __init__(self, inner: LeanHttpNetwork) -> None:
        self.inner = inner
        self.sent: list[list[tuple[str, str]]] = []

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    def _record(self, reqs: list[str]) -> None:
        self.sent.append([(json.loads(r)["kind"], json.loads(r)["head"]["corrId"]) for r in reqs])

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        self._record([req])
        return await self.inner.send(req, headers)

    async def send_together(
        self, reqs: list[str], headers: dict[str, str] | None = None
    ) -> list[str]:
        self._record(reqs)
        return await self.inner.send_together(reqs, headers)


def with_server(test: Callable[[Recorded], Awaitable[None]]) -> None:
    async def run() -> None:
        app = ServerApp(Engine(Store(":memory:"), clock=lambda: 1_000_000), None)
        server = uvicorn.Server(uvicorn_config(app, app))
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        sock = socket.create_server(("127.0.0.1", 0))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        network = LeanHttpNetwork(f"http://127.0.0.1:{sock.getsockname()[1]}")
        await network.start()
        try:
            await test(Recorded(network))
        finally:
            await network.stop()
            server.should_exit = True
            await task

    asyncio.run(run())


def test_requests_sent_together_are_read_in_order() -> None:
    async def check(network: Recorded) -> None:
        made, heard = await network.inner.send_together([create("p1"), listen("p1")])
        assert json.loads(made)["head"]["status"] in (200, 201)
        answer = json.loads(heard)
        assert (answer["head"]["status"], answer["head"]["corrId"]) == (200, "c-listen")
        assert answer["data"]["promise"]["id"] == "p1"

    with_server(check)


def test_the_sdks_listen_is_answered_with_the_one_sent_with_the_create() -> None:
    async def check(network: Recorded) -> None:
        creates = CreateWatch(network, listen_address=ADDRESS)
        with creates.watch("p2", TAG) as answer:
            made = json.loads(await creates.send(create("p2")))
            heard = json.loads(await creates.send(listen("p2", corr_id="sdk-listen")))
        assert made["head"]["status"] in (200, 201)
        assert answer.result() is not None and answer.result().tags["asyncrpc:request"] == "r-1"
        assert (heard["kind"], heard["head"]["corrId"]) == (
            "promise.register_listener",
            "sdk-listen",
        )
        assert (heard["head"]["status"], heard["data"]["promise"]["id"]) == (200, "p2")
        # One exchange: the create and its listen, together; the SDK's listen never left.
        assert network.sent == [
            [("promise.create", "c-create"), ("promise.register_listener", "c-create.listen")]
        ]

    with_server(check)


def test_other_listens_and_listens_after_the_watch_go_to_the_server() -> None:
    async def check(network: Recorded) -> None:
        creates = CreateWatch(network, listen_address=ADDRESS)
        with creates.watch("p3", TAG):
            await creates.send(create("p3"))
            other = json.loads(await creates.send(listen("p3", "elsewhere", "poll://uni@x/y")))
        late = json.loads(await creates.send(listen("p3", "late")))
        assert (other["head"]["corrId"], late["head"]["corrId"]) == ("elsewhere", "late")
        assert [kinds[-1][1] for kinds in network.sent] == ["c-create.listen", "elsewhere", "late"]

    with_server(check)


def test_a_failed_create_leaves_no_answer_for_a_listen() -> None:
    async def check(network: Recorded) -> None:
        creates = CreateWatch(network, listen_address=ADDRESS)
        with creates.watch("p4", TAG) as answer:
            refused = json.loads(await creates.send(envelope("promise.create", "bad", id="p4")))
        assert refused["head"]["status"] == 400 and answer.result() is None
        gone = json.loads(await creates.send(listen("p4", "after")))
        assert (gone["head"]["corrId"], gone["head"]["status"]) == ("after", 404)

    with_server(check)


def test_a_network_that_cannot_send_together_is_refused() -> None:
    class Plain:
        async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
            return req

    try:
        CreateWatch(Plain(), listen_address=ADDRESS)  # type: ignore[arg-type]
    except ValueError as exc:
        assert "cannot send a listen together" in str(exc)
    else:
        raise AssertionError("a network without send_together was accepted")
