"""Part 3: the in-process floor: the await chain with the whole topology in one process.

One Resonate instance on the SDK's in-process server
(:class:`~resonate.connections.local.LocalConnection`) registers all nine
functions. Targets still resolve (``service-a`` becomes
``local://any@service-a``), but in one process there is nothing to route
between: the local server hands every message to its one subscriber, which
runs whichever function it names. So the same functions make the same
durable calls through the same protocol state machine, with no sockets, no
SQLite, no JSON over HTTP and one event loop: what network hops and separate
processes cost is the gap between this and the whole topology.

Two deliberate choices. The local server's state is
:class:`~benchmarks.indexed_state.IndexedServerState` (the SDK's state
machine, with indexes for the two helpers that otherwise scan every promise
ever created on each task acquire and settle): with the SDK's plain
``ServerState`` the floor sinks as history grows (about 280 to 25
invocations/s over 1,600 await chains at 16 callers, measured on this
machine), which would flatter the ratio. And each concurrency level gets a
fresh instance, so levels do not inherit each other's history.
"""

from __future__ import annotations

import asyncio

from resonate.connections.local import LocalConnection
from resonate.resonate import Resonate

from asyncrpc import services
from benchmarks.bench import Bench
from benchmarks.direct import client_level
from benchmarks.indexed_state import IndexedServerState
from benchmarks.measure import CpuMeter, LoadResult, invocation_count
from benchmarks.report import (
    CPU_NOTE,
    PartResult,
    add_level,
    error_notes,
    level_table,
    levels_json,
)


def in_process() -> Resonate:
    """Every function of every node in one Resonate on the in-process server."""
    server = LocalConnection()
    server.state = IndexedServerState()
    resonate = Resonate(network=server, env={}, subscription_refresh_secs=0)
    for name, function in services.FUNCTIONS.items():
        resonate.register(function, name=name)
    return resonate


async def floor_level(ids: list[str], warmup: list[str], callers: int) -> LoadResult:
    """One concurrency level on a fresh in-process server (the direct client's calls)."""
    resonate = in_process()
    try:
        return await client_level(resonate, ids, warmup, callers, CpuMeter.driver_only())
    finally:
        await resonate.stop()


def measured_level(bench: Bench, callers: int) -> LoadResult:
    count = invocation_count(bench.sizes.throughput, callers, bench.sizes.per_caller)
    bench.say(f"in-process floor: await chain, {callers} callers x {count} invocations")
    warmup = bench.ids(f"floor-{callers}-warm", min(callers, 16))
    return asyncio.run(floor_level(bench.ids(f"floor-{callers}", count), warmup, callers))


def run(bench: Bench) -> PartResult:
    levels = [measured_level(bench, callers) for callers in bench.sizes.callers]
    result = PartResult("floor", data={"levels": levels_json(levels, ("driver",))})
    table = level_table("Await chain, whole topology in one process (SDK LocalConnection)")
    for level in levels:
        add_level(table, level)
    result.tables.append(table)
    result.notes.extend([*error_notes(levels), CPU_NOTE])
    return result
