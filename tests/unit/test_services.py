"""The durable functions, run in-process on the SDK's LocalConnection (no server, no network)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from resonate.connections import LocalConnection
from resonate.resonate import Resonate

from asyncrpc.lesson import services
from asyncrpc.lesson.topology import FLOWS, NODES
from tests.support.in_process import in_process


def run(test: Callable[[Resonate, LocalConnection], Awaitable[Any]], delay: float = 0.0) -> Any:
    async def main() -> Any:
        resonate, server = in_process(delay)
        try:
            return await asyncio.wait_for(test(resonate, server), 30)
        finally:
            await resonate.stop()

    return asyncio.run(main())


def test_every_node_function_exists_and_nothing_else() -> None:
    assert set(services.FUNCTIONS) == {node.function for node in NODES.values()}


@pytest.mark.parametrize("flow", [FLOWS["await-chain"], FLOWS["fan-out"]], ids=lambda f: f.name)
def test_waiting_flows_return_3(flow) -> None:  # type: ignore[no-untyped-def]
    async def call(resonate: Resonate, _: LocalConnection) -> Any:
        handle = resonate.options(target=flow.entry_group).rpc(
            flow.default_id, flow.entry_function, *flow.entry_args
        )
        return await handle.result()

    assert run(call) == flow.expected_result == 3


def test_detached_chain_ends_with_cog_keeping_3(caplog: pytest.LogCaptureFixture) -> None:
    flow = FLOWS["detached-chain"]

    async def call(resonate: Resonate, _: LocalConnection) -> list[Any]:
        handle = resonate.options(target=flow.entry_group).rpc(
            flow.default_id, flow.entry_function, *flow.entry_args
        )
        # Each detached step returns the id of the step it started: follow them.
        quz_id = await handle.result()
        records = [await resonate.promises.get(flow.default_id)]
        for _ in range(2):
            while (record := await resonate.promises.get(quz_id)).state == "pending":
                await asyncio.sleep(0.01)
            records.append(record)
            quz_id = record.value.data
        return records

    with caplog.at_level(logging.INFO, logger="asyncrpc.lesson.services"):
        qux, quz, cog = run(call)

    assert [r.param.data["func"] for r in (qux, quz, cog)] == ["qux", "quz", "cog"]
    assert [r.param.data["args"] for r in (qux, quz, cog)] == [[1], [2], [3]]
    assert cog.state == "resolved" and cog.value.data == 3
    assert any(m.endswith("cog received 3") for m in caplog.messages)
    # Detached steps hang off the root's origin, which is how a search finds them.
    assert cog.tags["resonate:origin"] == flow.default_id


def test_the_crash_demo_delay_is_a_durable_timer() -> None:
    flow = FLOWS["fan-out"]

    async def call(resonate: Resonate, server: LocalConnection) -> tuple[Any, list[str]]:
        handle = resonate.options(target=flow.entry_group).rpc("paused", "zim", 1)
        result = await handle.result()
        timers = [
            promise.id
            for promise in server.state.promises.values()
            if promise.tags.get("resonate:timer") == "true"
        ]
        return result, timers

    result, timers = run(call, delay=0.05)

    assert result == 3
    # zim, rax and dop each slept once, as a timer promise on the server.
    assert len(timers) == 3
