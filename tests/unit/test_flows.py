"""Start / re-attach / read invocations, on the SDK's in-process server, plus an unreachable one."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from resonate.connections import LocalConnection
from resonate.context import Context
from resonate.resonate import Resonate
from resonate_base.connections import Network

from asyncrpc.gateway import invocations
from asyncrpc.gateway.app import invocation_json
from asyncrpc.lesson.topology import FLOWS
from asyncrpc.network.bounded import bounded_network
from asyncrpc.network.start_channel import StartChannel
from asyncrpc.protocol.errors import (
    InvalidInvocationId,
    InvocationConflict,
    InvocationFailed,
    NotStarted,
    ServerUnavailable,
    UnknownInvocation,
)
from asyncrpc.protocol.states import PromiseState
from asyncrpc.readers.server_reader import AsyncServerReader
from harness.isolation import free_port
from tests.support.in_process import local_reader, watched_in_process

AWAIT_CHAIN = FLOWS["await-chain"]


async def boom(ctx: Context) -> int:
    raise ValueError("boom went the flow")


#: A flow whose entry function fails, to see how a rejection is reported.
FAILING = dataclasses.replace(AWAIT_CHAIN, name="failing", entry_function="boom")


@dataclasses.dataclass(frozen=True)
class Gateway:
    """What a start needs: a Resonate client and the channel its requests go through."""

    client: Resonate
    channel: StartChannel


Test = Callable[[Gateway, AsyncServerReader], Awaitable[Any]]


class AlwaysOk:
    """The in-process server, answering a create with 200 whether the promise is new or not.

    That is how Resonate's own servers answer, so a start must not rely on 201 vs 200.
    """

    def __init__(self, server: LocalConnection) -> None:
        self.server = server
        self.statuses: list[int] = []

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        answer = json.loads(await self.server.send(req, headers))
        if answer.get("kind") == "promise.create":
            self.statuses.append(answer["head"]["status"])
            answer["head"]["status"] = 200
        return json.dumps(answer)


def run(test: Test, delay: float = 0.0, always_ok: AlwaysOk | None = None) -> Any:
    async def main() -> Any:
        resonate, channel, server = watched_in_process(delay)
        resonate.register(boom)
        gateway = Gateway(resonate, channel)
        if always_ok is not None:
            always_ok.server = server
            channel = StartChannel(always_ok)
            client = Resonate(network=channel, env={}, subscription_refresh_secs=0.05)
            gateway = Gateway(client, channel)
        reader = local_reader(server)
        try:
            return await asyncio.wait_for(test(gateway, reader), 30)
        finally:
            await reader.aclose()
            if gateway.client is not resonate:
                await gateway.client.stop()
            await resonate.stop()

    return asyncio.run(main())


async def start_twice(gateway: Gateway, reader: AsyncServerReader) -> list[Any]:
    outcomes = []
    for _ in range(2):
        started = await invocations.start(gateway.client, gateway.channel, AWAIT_CHAIN, "order-42")
        done = await invocations.result(gateway.client, reader, started, 10)
        outcomes.append((started.id, started.reattached, done))
    return outcomes


def test_start_then_reattach_to_the_same_invocation() -> None:
    assert run(start_twice) == [("order-42", False, (True, 3)), ("order-42", True, (True, 3))]


def test_reattaching_is_told_from_the_answer_not_its_status() -> None:
    always_ok = AlwaysOk(None)  # type: ignore[arg-type]
    assert run(start_twice, always_ok=always_ok) == [
        ("order-42", False, (True, 3)),
        ("order-42", True, (True, 3)),
    ]
    assert always_ok.statuses and set(always_ok.statuses) <= {200, 201}


async def start_together(gateway: Gateway, _: AsyncServerReader) -> list[bool]:
    starts = [
        invocations.start(gateway.client, gateway.channel, AWAIT_CHAIN, "twins") for _ in range(3)
    ]
    return sorted(started.reattached for started in await asyncio.gather(*starts))


@pytest.mark.parametrize("answers_200", [False, True])
def test_of_concurrent_starts_of_one_id_exactly_one_is_new(answers_200: bool) -> None:
    always_ok = AlwaysOk(None) if answers_200 else None  # type: ignore[arg-type]
    assert run(start_together, always_ok=always_ok) == [False, True, True]


def test_default_id_is_the_flows_fixed_id() -> None:
    async def default(gateway: Gateway, _: AsyncServerReader) -> str:
        return (await invocations.start(gateway.client, gateway.channel, AWAIT_CHAIN)).id

    assert run(default) == AWAIT_CHAIN.default_id


def test_read_reports_state_function_and_result() -> None:
    async def read(gateway: Gateway, reader: AsyncServerReader) -> tuple[Any, Any]:
        started = await invocations.start(gateway.client, gateway.channel, AWAIT_CHAIN, "seen")
        pending = await invocations.read(reader, "seen")
        await invocations.result(gateway.client, reader, started, 10)
        return pending, await invocations.read(reader, "seen")

    pending, done = run(read, delay=0.3)

    assert (pending.state, pending.settled) == (PromiseState.PENDING, False)
    assert invocation_json(pending) == {"id": "seen", "state": "pending", "function": "foo"}
    assert invocation_json(done) == {
        "id": "seen",
        "state": "resolved",
        "result": 3,
        "function": "foo",
    }
    assert done.group == "service-a"


def test_a_bounded_wait_returns_while_still_pending() -> None:
    async def impatient(gateway: Gateway, reader: AsyncServerReader) -> tuple[bool, Any]:
        started = await invocations.start(gateway.client, gateway.channel, AWAIT_CHAIN, "slow")
        return await invocations.result(gateway.client, reader, started, 0)

    assert run(impatient, delay=0.3) == (False, None)


def test_a_wait_past_its_deadline_leaves_its_task_as_it_found_it() -> None:
    """As with asyncio.timeout_at: the deadline's cancellation is taken back, others are not."""

    async def waits(gateway: Gateway, reader: AsyncServerReader) -> tuple[Any, int, bool]:
        started = await invocations.start(gateway.client, gateway.channel, AWAIT_CHAIN, "slow-2")
        pending = await invocations.result(gateway.client, reader, started, 0.05)
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        waiter = asyncio.create_task(invocations.result(gateway.client, reader, started, 20))
        await asyncio.sleep(0.05)
        waiter.cancel()  # cancelled from elsewhere, before its deadline: it is not a 202
        cancelled = False
        try:
            await waiter
        except asyncio.CancelledError:
            cancelled = True
        return pending, cancelling, cancelled

    pending, cancelling, cancelled = run(waits, delay=0.5)
    assert pending == (False, None)
    assert cancelling == 0
    assert cancelled


def test_a_failed_flow_is_reported_with_its_message() -> None:
    async def failing(gateway: Gateway, reader: AsyncServerReader) -> InvocationFailed:
        started = await invocations.start(gateway.client, gateway.channel, FAILING, "fails")
        with pytest.raises(InvocationFailed) as raised:
            await invocations.result(gateway.client, reader, started, 10)
        return raised.value

    failure = run(failing)

    assert failure.invocation.state == "rejected"
    assert failure.invocation.error == "boom went the flow"
    assert invocation_json(failure.invocation)["error"] == "boom went the flow"


class GivesUp:
    """A result handle whose listener failed, as the SDK's can for a settled invocation."""

    async def result(self) -> Any:
        raise RuntimeError("the listener gave up")


def test_a_resolved_invocation_gives_its_value_even_when_the_handle_fails() -> None:
    async def resolved(gateway: Gateway, reader: AsyncServerReader) -> tuple[bool, Any]:
        started = await invocations.start(gateway.client, gateway.channel, AWAIT_CHAIN, "gives-up")
        await invocations.result(gateway.client, reader, started, 10)
        failing = dataclasses.replace(started, handle=GivesUp())
        return await invocations.result(gateway.client, reader, failing, 10)

    assert run(resolved) == (True, AWAIT_CHAIN.expected_result)


def test_an_id_used_by_another_flow_is_a_conflict() -> None:
    async def clash(gateway: Gateway, reader: AsyncServerReader) -> None:
        started = await invocations.start(gateway.client, gateway.channel, AWAIT_CHAIN, "shared")
        await invocations.result(gateway.client, reader, started, 10)
        with pytest.raises(InvocationConflict, match="already used by foo"):
            await invocations.start(gateway.client, gateway.channel, FLOWS["fan-out"], "shared")

    run(clash)


@pytest.mark.parametrize("bad", ["", "a:b", "has space", "-leading", "x" * 129, "a/b"])
def test_invalid_ids_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInvocationId, match="letters, digits"):
        invocations.check_invocation_id(bad)


def test_unknown_invocation() -> None:
    async def unknown(_: Gateway, reader: AsyncServerReader) -> None:
        with pytest.raises(UnknownInvocation, match="no invocation with id 'nobody'"):
            await invocations.read(reader, "nobody")

    run(unknown)


def test_an_unreachable_server_is_reported_not_retried_forever() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    async def unreachable() -> None:
        channel = StartChannel(bounded_network(url, timeout=0.5))
        client = Resonate(network=channel, sources=[], env={})
        reader = AsyncServerReader(url, timeout=0.5)
        try:
            with pytest.raises(NotStarted, match="nowhere was NOT started") as raised:
                await invocations.start(client, channel, AWAIT_CHAIN, "nowhere")
            assert url in str(raised.value)
            assert isinstance(raised.value, ServerUnavailable)  # a 503 at the gateway
            with pytest.raises(ServerUnavailable, match="unreachable"):
                await invocations.read(reader, "nowhere")
        finally:
            await reader.aclose()
            await client.stop()

    asyncio.run(asyncio.wait_for(unreachable(), 30))


def test_a_handle_the_sdk_gave_up_on_too_early_is_listened_to_again() -> None:
    """The SDK's listener refresh can race a promise's creation, get a 404 and settle the
    handle as "gone" while the flow still runs; the wait must not report that as a failure."""

    async def raced(gateway: Gateway, reader: AsyncServerReader) -> tuple[bool, Any]:
        started = await invocations.start(gateway.client, gateway.channel, AWAIT_CHAIN, "raced-1")
        client = gateway.client
        subscription = client._runtime.subs[started.id]  # what the SDK's refresh loop does:
        client._settle_subscription_gone(started.id, subscription, "promise not found")
        return await invocations.result(gateway.client, reader, started, 20)

    assert run(raced, delay=0.5) == (True, 3)


class Recorder:
    """A request channel that notes each request's kind as it is handed one."""

    def __init__(self, inner: Network) -> None:
        self.inner = inner
        self.kinds: list[str] = []

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        self.kinds.append(json.loads(req)["kind"])
        return await self.inner.send(req, headers)


def test_a_starts_create_leaves_in_the_turn_the_start_began() -> None:
    """A start sends its create before its first wait: in the turn of the event loop it began."""

    async def main() -> list[str]:
        recorders: list[Recorder] = []

        def around(requests: Network) -> Network:
            recorders.append(Recorder(requests))
            return recorders[-1]

        resonate, channel, _ = watched_in_process(around=around)
        try:
            start = invocations.start(resonate, channel, AWAIT_CHAIN, "eager")
            task = asyncio.Task(start, loop=asyncio.get_running_loop(), eager_start=True)
            sent_at_once = list(recorders[0].kinds)
            await asyncio.wait_for(task, 30)
            return sent_at_once
        finally:
            await resonate.stop()

    # (in process the server answers in the same turn: the rest of the flow may follow)
    assert asyncio.run(main())[:1] == ["promise.create"]
