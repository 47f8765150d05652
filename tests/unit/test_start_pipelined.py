"""A start's create and listen, sent together, against the real server in this test's loop.

Where the channel pipelines (:meth:`~asyncrpc.network.lean_http.LeanHttpNetwork.send_together`),
:func:`asyncrpc.gateway.invocations.start` sends its create and the listen for it on
one connection in one write; the server reads the two in order, so the listen finds
the promise the create made. The create is the one the SDK's ``rpc`` sends, with the
start's request tag added.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvicorn
from resonate.resonate import Resonate

from asyncrpc.gateway import invocations, sdk_rpc
from asyncrpc.lesson.topology import FLOWS
from asyncrpc.network.lean_http import LeanHttpNetwork
from asyncrpc.network.start_channel import StartChannel
from asyncrpc.server.app import ServerApp
from asyncrpc.server.engine import Engine
from asyncrpc.server.main import uvicorn_config
from asyncrpc.server.store import Store
from tests.support.in_process import watched_in_process

ADDRESS = "poll://uni@gateway/gateway-1"
AWAIT_CHAIN = FLOWS["await-chain"]


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


class Source:
    """A message source that hears nothing: what a start needs of one is its address."""

    def unicast(self) -> str:
        return ADDRESS

    def resolve_target(self, target: str) -> str:
        return f"poll://any@{target}"

    def recv(self, callback: Callable[[str], None]) -> None:
        pass

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


def client_of(network: Recorded) -> tuple[Resonate, StartChannel]:
    channel = StartChannel(network, pipelines=True)
    return Resonate(network=channel, sources=[Source()], env={}), channel


def test_a_start_sends_its_create_and_its_listen_in_one_exchange() -> None:
    async def check(network: Recorded) -> None:
        client, channel = client_of(network)
        started = await invocations.start(client, channel, AWAIT_CHAIN, "p2", request_id=str)
        assert (started.id, started.reattached) == ("p2", False)
        assert not started.handle.done()  # listened to: the unblock settles it
        assert client._runtime.subs["p2"] is started.handle._sub
        [exchange] = network.sent
        (create_kind, corr_id), (listen_kind, listen_corr_id) = exchange
        assert (create_kind, listen_kind) == ("promise.create", "promise.register_listener")
        assert listen_corr_id == corr_id + sdk_rpc.LISTEN_SUFFIX

    with_server(check)


def test_a_start_of_a_settled_invocation_is_settled_by_its_listen() -> None:
    async def check(network: Recorded) -> None:
        client, channel = client_of(network)
        await invocations.start(client, channel, AWAIT_CHAIN, "p3", request_id=lambda: "first")
        value = {"headers": {}, "data": "Mw=="}  # 3, as the SDK's codec writes it
        settle = envelope("promise.settle", "s-1", id="p3", state="resolved", value=value)
        assert json.loads(await network.inner.send(settle))["head"]["status"] == 200
        client._runtime.subs.clear()  # a later start, the first one's wait long over
        again = await invocations.start(client, channel, AWAIT_CHAIN, "p3", request_id=lambda: "2")
        assert again.reattached and again.handle.done()
        assert await again.handle.result() == 3
        assert "p3" not in client._runtime.subs

    with_server(check)


def test_a_start_of_a_rejected_invocation_raises_its_error_from_the_handle() -> None:
    async def check(network: Recorded) -> None:
        client, channel = client_of(network)
        await invocations.start(client, channel, AWAIT_CHAIN, "p5", request_id=lambda: "first")
        value = {"headers": {}, "data": "Mw=="}
        settle = envelope("promise.settle", "s-1", id="p5", state="rejected", value=value)
        assert json.loads(await network.inner.send(settle))["head"]["status"] == 200
        client._runtime.subs.clear()
        again = await invocations.start(client, channel, AWAIT_CHAIN, "p5", request_id=lambda: "2")
        assert again.reattached and again.handle.done()
        try:
            await again.handle.result()
        except Exception:
            pass
        else:
            raise AssertionError("a rejected invocation's handle returned a value")

    with_server(check)


class Refused(Recorded):
    """Answers one of a start's two requests (0: the create, 1: the listen) in place of the
    server, with ``status`` and no promise; the server answers both as well."""

    def __init__(self, inner: Recorded, which: int, status: int) -> None:
        super().__init__(inner.inner)
        self.which, self.status = which, status

    async def send_together(
        self, reqs: list[str], headers: dict[str, str] | None = None
    ) -> list[str]:
        request = json.loads(reqs[self.which])
        head = {"corrId": request["head"]["corrId"], "status": self.status, "version": ""}
        refusal = {"kind": request["kind"], "head": head, "data": {"error": "gone"}}
        answers = [await self.inner.send(req, headers) for req in reqs]
        answers[self.which] = json.dumps(refusal)
        return answers


def test_a_listen_answered_404_settles_the_handle_as_gone() -> None:
    async def check(network: Recorded) -> None:
        client, _ = client_of(network)
        started = await invocations.start(
            client, StartChannel(Refused(network, 1, 404), pipelines=True), AWAIT_CHAIN, "p6"
        )
        assert started.handle.done() and "p6" not in client._runtime.subs
        try:
            await started.handle.result()
        except Exception as exc:
            assert "gone" in str(exc)
        else:
            raise AssertionError("a handle settled as gone returned a value")

    with_server(check)


@pytest.mark.parametrize(
    ("status", "invocation_id", "says"),
    [
        (409, "p4", "409"),  # refused
        (200, "p7", "creating 'p7' held no promise"),  # answered without a promise
    ],
)
def test_a_create_not_answered_with_a_promise_is_refused_and_drops_the_subscription(
    status: int, invocation_id: str, says: str
) -> None:
    async def check(network: Recorded) -> None:
        client, _ = client_of(network)
        refused = StartChannel(Refused(network, 0, status), pipelines=True)
        with pytest.raises(invocations.ServerRefused, match=re.escape(says)):
            await invocations.start(client, refused, AWAIT_CHAIN, invocation_id)
        assert invocation_id not in client._runtime.subs

    with_server(check)


def test_a_starts_create_is_the_sdks_rpc_create_with_its_request_tag() -> None:
    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        class Keep:
            def __init__(self, inner: Any) -> None:
                self.inner = inner

            async def start(self) -> None:
                await self.inner.start()

            async def stop(self) -> None:
                await self.inner.stop()

            async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
                sent.append(json.loads(req))
                return str(await self.inner.send(req, headers))

        resonate, channel, _ = watched_in_process(around=Keep)
        try:
            caller = invocations.group_caller(resonate, AWAIT_CHAIN.entry_group)
            handle = caller.rpc("by-sdk", AWAIT_CHAIN.entry_function, *AWAIT_CHAIN.entry_args)
            await handle.id()
            await invocations.start(resonate, channel, AWAIT_CHAIN, "by-gw", request_id=lambda: "r")
        finally:
            await resonate.stop()
        creates = [req for req in sent if req["kind"] == "promise.create"]
        return creates[0], creates[1]

    by_sdk, by_gateway = asyncio.run(main())

    def alike(create: dict[str, Any], promise_id: str) -> dict[str, Any]:
        text = json.dumps(create).replace(promise_id, "ID")
        same = json.loads(text)
        del same["head"]["corrId"], same["data"]["timeoutAt"]
        return same

    assert by_gateway["data"]["tags"].pop("asyncrpc:request") == "r"
    assert alike(by_gateway, "by-gw") == alike(by_sdk, "by-sdk")
    assert abs(by_gateway["data"]["timeoutAt"] - by_sdk["data"]["timeoutAt"]) < 60_000


def test_a_channel_that_cannot_send_together_is_refused() -> None:
    class Plain:
        async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
            return req

    try:
        StartChannel(Plain(), pipelines=True)  # type: ignore[arg-type]
    except ValueError as exc:
        assert "cannot send requests together" in str(exc)
    else:
        raise AssertionError("a network without send_together was accepted")
