"""Part 5: the await chain driven by an SDK client directly, no HTTP gateway in between.

The benchmark process itself becomes a Resonate client of the shared
topology's server, connected the way every asyncrpc process connects
(:func:`asyncrpc.network.join.join`: the lean HTTP client for requests, the SDK's
SSE stream), and does what a gateway handler does at its core:
``resonate.options(target=service-a).rpc(id, "foo")`` then
``await handle.result()``. Against our gateway's numbers this is the cost of
the gateway itself: HTTP in and out, FastAPI, and one more process on the
two cores.
"""

from __future__ import annotations

import asyncio

from resonate.resonate import Resonate

from asyncrpc.network.join import join
from benchmarks.bench import AWAIT_CHAIN, Bench
from benchmarks.measure import CpuMeter, LoadResult, drive, invocation_count
from benchmarks.processes import READY_TIMEOUT, BenchError, Topology, stream_connected, wait_for
from benchmarks.report import (
    CPU_NOTE,
    PartResult,
    add_level,
    error_notes,
    level_table,
    levels_json,
)

GROUP = "bench-client"


async def wait_connected(server_url: str, pid: str) -> None:
    await asyncio.to_thread(
        wait_for,
        lambda: stream_connected(server_url, GROUP, pid),
        READY_TIMEOUT,
        f"the direct client's poll stream to connect to {server_url}",
    )


async def connect_client(server_url: str, pid: str) -> Resonate:
    """An SDK client in this process, joined the way asyncrpc processes join; connected."""
    resonate, _ = join(server_url, group=GROUP, pid=pid)
    try:
        await wait_connected(server_url, pid)
    except BaseException:
        await resonate.stop()
        raise
    return resonate


async def client_level(
    resonate: Resonate, ids: list[str], warmup: list[str], callers: int, meter: CpuMeter
) -> LoadResult:
    """One level from any SDK client: ``rpc`` + ``result`` per id, ``callers`` at once."""
    client = resonate.options(target=AWAIT_CHAIN.entry_group)

    async def call(invocation_id: str) -> None:
        handle = client.rpc(invocation_id, AWAIT_CHAIN.entry_function, *AWAIT_CHAIN.entry_args)
        value = await handle.result()
        if value != AWAIT_CHAIN.expected_result:
            raise BenchError(f"wrong answer: {value!r}")

    await drive(call, warmup, callers)
    return await drive(call, ids, callers, meter)


async def sdk_levels(bench: Bench, system: Topology) -> list[LoadResult]:
    """Every concurrency level, from one SDK client in this process."""
    resonate = await connect_client(system.server_url, f"{GROUP}-{bench.tag}")
    try:
        meter = system.meter(with_gateway=False)  # ours is up, idle, not in the path
        levels = []
        for callers in bench.sizes.callers:
            count = invocation_count(bench.sizes.throughput, callers, bench.sizes.per_caller)
            bench.say(f"direct client: await chain, {callers} callers x {count} invocations")
            warmup = bench.ids(f"direct-{callers}-warm", min(callers, 16))
            ids = bench.ids(f"direct-{callers}", count)
            levels.append(await client_level(resonate, ids, warmup, callers, meter))
        return levels
    finally:
        await resonate.stop()


def run(bench: Bench) -> PartResult:
    system = bench.topology()
    levels = asyncio.run(sdk_levels(bench, system))
    result = PartResult(
        "direct", data={"levels": levels_json(levels, ("server", "nodes", "driver"))}
    )
    table = level_table("Await chain from an SDK client, no gateway (resonate.rpc + result)")
    for level in levels:
        add_level(table, level)
    result.tables.append(table)
    result.notes.extend([*error_notes(levels), CPU_NOTE])
    return result
