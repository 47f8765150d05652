"""Start / re-attach / inspect, on the SDK's in-process server, plus an unreachable real one."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from resonate.codec import Codec, NoopEncryptor
from resonate.context import Context
from resonate.resonate import Resonate

from asyncrpc import flows
from asyncrpc.server.engine import Engine
from asyncrpc.server.store import Store
from asyncrpc.topology import FLOWS
from tests.in_process import in_process
from tests.support import free_port

AWAIT_CHAIN = FLOWS["await-chain"]
CODEC = Codec(NoopEncryptor())


async def boom(ctx: Context) -> int:
    raise ValueError("boom went the flow")


#: A flow whose entry function fails, to see how a rejection is reported.
FAILING = dataclasses.replace(AWAIT_CHAIN, name="failing", entry_function="boom")


def run(test: Callable[[Resonate], Awaitable[Any]], delay: float = 0.0) -> Any:
    async def main() -> Any:
        resonate, _ = in_process(delay)
        resonate.register(boom)
        try:
            return await asyncio.wait_for(test(resonate), 30)
        finally:
            await resonate.stop()

    return asyncio.run(main())


def test_start_then_reattach_to_the_same_invocation() -> None:
    async def twice(client: Resonate) -> list[Any]:
        outcomes = []
        for _ in range(2):
            handle, existed = await flows.start(client, AWAIT_CHAIN, "order-42")
            outcomes.append((await handle.id(), existed, await flows.result(client, handle, 10)))
        return outcomes

    assert run(twice) == [("order-42", False, (True, 3)), ("order-42", True, (True, 3))]


def test_default_id_is_the_flows_fixed_id() -> None:
    async def default(client: Resonate) -> str:
        handle, _ = await flows.start(client, AWAIT_CHAIN)
        return await handle.id()

    assert run(default) == AWAIT_CHAIN.default_id


def test_inspect_reports_state_function_and_result() -> None:
    async def inspect(client: Resonate) -> tuple[flows.Invocation, flows.Invocation]:
        handle, _ = await flows.start(client, AWAIT_CHAIN, "seen")
        pending = await flows.inspect(client, "seen")
        await flows.result(client, handle, 10)
        return pending, await flows.inspect(client, "seen")

    pending, done = run(inspect, delay=0.3)

    assert (pending.state, pending.done) == ("pending", False)
    assert pending.to_json() == {"id": "seen", "state": "pending", "function": "foo"}
    assert done.to_json() == {"id": "seen", "state": "resolved", "result": 3, "function": "foo"}
    assert done.group == "service-a"


def test_a_bounded_wait_returns_while_still_pending() -> None:
    async def impatient(client: Resonate) -> tuple[bool, Any]:
        handle, _ = await flows.start(client, AWAIT_CHAIN, "slow")
        return await flows.result(client, handle, 0)

    assert run(impatient, delay=0.3) == (False, None)


def test_a_failed_flow_is_reported_with_its_message() -> None:
    async def failing(client: Resonate) -> flows.FlowFailed:
        handle, _ = await flows.start(client, FAILING, "fails")
        with pytest.raises(flows.FlowFailed) as raised:
            await flows.result(client, handle, 10)
        return raised.value

    failure = run(failing)

    assert failure.invocation.state == "rejected"
    assert failure.invocation.error == "boom went the flow"
    assert failure.invocation.to_json()["error"] == "boom went the flow"


def test_an_id_used_by_another_flow_is_a_conflict() -> None:
    async def clash(client: Resonate) -> None:
        handle, _ = await flows.start(client, AWAIT_CHAIN, "shared")
        await flows.result(client, handle, 10)
        with pytest.raises(flows.InvocationConflict, match="already used by foo"):
            await flows.start(client, FLOWS["fan-out"], "shared")

    run(clash)


@pytest.mark.parametrize("bad", ["", "a:b", "has space", "-leading", "x" * 129, "a/b"])
def test_invalid_ids_are_refused(bad: str) -> None:
    with pytest.raises(flows.InvalidInvocationId, match="letters, digits"):
        flows.check_invocation_id(bad)


def test_unknown_invocation() -> None:
    async def unknown(client: Resonate) -> None:
        with pytest.raises(flows.UnknownInvocation, match="no invocation with id 'nobody'"):
            await flows.inspect(client, "nobody")

    run(unknown)


def test_an_unreachable_server_is_reported_not_retried_forever() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    async def unreachable() -> None:
        client = Resonate(network=flows.bounded_network(url, timeout=0.5), sources=[], env={})
        try:
            with pytest.raises(flows.ServerUnavailable, match="unreachable") as raised:
                await flows.start(client, AWAIT_CHAIN, "nowhere")
            assert url in str(raised.value)
        finally:
            await client.stop()

    asyncio.run(asyncio.wait_for(unreachable(), 30))


def test_a_handle_the_sdk_gave_up_on_too_early_is_listened_to_again() -> None:
    """The SDK's listener refresh can race a promise's creation, get a 404 and settle the
    handle as "gone" while the flow still runs; the wait must not report that as a failure."""

    async def raced(client: Resonate) -> tuple[bool, Any]:
        handle, _ = await flows.start(client, AWAIT_CHAIN, "raced-1")
        invocation_id = await handle.id()
        subscription = client._runtime.subs[invocation_id]  # what the SDK's refresh loop does:
        client._settle_subscription_gone(invocation_id, subscription, "promise not found")
        return await flows.result(client, handle, 20)

    assert run(raced, delay=0.5) == (True, 3)


# ── The gateway's creation ledger: a new or re-attached invocation, from the create's answer ──


def create_answer(engine: Engine, promise_id: str, function: str) -> str:
    """The real server's answer to creating ``promise_id`` as an invocation of ``function``."""
    param = CODEC.encode({"func": function, "args": [], "kwargs": {}, "version": 1})
    envelope = {
        "kind": "promise.create",
        "head": {"corrId": "c1", "version": ""},
        "data": {
            "id": promise_id,
            "timeoutAt": 2**62,
            "param": {"headers": param.headers, "data": param.data},
            "tags": {},
        },
    }
    return engine.handle(json.dumps(envelope).encode()).body.decode()


def test_the_ledger_tells_a_new_invocation_from_an_existing_one() -> None:
    """The server answers 200 either way: a promise created before the request existed."""
    now = [1_000]
    engine = Engine(Store(":memory:"), clock=lambda: now[0])
    ledger = flows.CreationLedger()
    ledger.record(create_answer(engine, "inv-1", "foo"), sent_at=1_000)
    now[0] = 1_005
    # same id again, sent after the first was created: the first one stays
    ledger.record(create_answer(engine, "inv-1", "zim"), sent_at=1_004)
    assert ledger.take("inv-1") == flows.Creation(existed=False, function="foo")
    assert ledger.take("inv-1") == flows.Creation(existed=True, function="foo")
    assert ledger.take("inv-1") is None


def test_the_ledger_understands_201_for_a_new_promise() -> None:
    engine = Engine(Store(":memory:"))
    answer = json.loads(create_answer(engine, "inv-2", "foo"))
    answer["head"]["status"] = 201
    ledger = flows.CreationLedger()
    ledger.record(json.dumps(answer))
    assert ledger.take("inv-2") == flows.Creation(existed=False, function="foo")


def test_the_ledger_ignores_other_answers_and_forgets_the_oldest() -> None:
    engine = Engine(Store(":memory:"))
    ledger = flows.CreationLedger(limit=2)
    for text in ('{"kind": "promise.get"}', "not json", '{"kind": "promise.create"}', ""):
        ledger.record(text)
    for promise_id in ("a", "b", "c"):
        ledger.record(create_answer(engine, promise_id, "foo"), sent_at=0)
    assert ledger.take("a") is None
    assert ledger.take("c") == flows.Creation(existed=False, function="foo")
