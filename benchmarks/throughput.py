"""Part 2: the await chain through our gateway with 1, 16 and 64 concurrent callers.

Each caller POSTs ``/await-chain?id=<unique id>`` back to back over a
keep-alive connection of its own (aiohttp, see :mod:`benchmarks.load_client`)
and checks the answer is ``{"message": 3}``.
:func:`http_levels` is also what the Flask baseline part runs, so both
gateways see exactly the same load.
"""

from __future__ import annotations

import asyncio

from benchmarks import load_client
from benchmarks.bench import AWAIT_CHAIN, Bench
from benchmarks.measure import CpuMeter, LoadResult, drive, invocation_count
from benchmarks.processes import BenchError, total_rss_bytes
from benchmarks.report import (
    CPU_NOTE,
    HTTP_PRODUCT,
    PartResult,
    add_level,
    error_notes,
    level_table,
    levels_json,
    mib,
)

CALL_TIMEOUT = 120.0


async def http_level(
    url: str, ids: list[str], warmup: list[str], callers: int, meter: CpuMeter
) -> LoadResult:
    """One concurrency level against the gateway at ``url``."""
    async with load_client.session(url, callers, CALL_TIMEOUT) as client:

        async def call(invocation_id: str) -> None:
            status, body = await load_client.post(
                client, AWAIT_CHAIN.route, params={"id": invocation_id}
            )
            if status != 200 or body != {"message": AWAIT_CHAIN.expected_result}:
                raise BenchError(f"HTTP {status}: {str(body)[:200]}")

        await drive(call, warmup, callers)
        return await drive(call, ids, callers, meter)


def http_levels(bench: Bench, url: str, label: str, meter: CpuMeter) -> list[LoadResult]:
    """Every concurrency level of ``bench.sizes`` against the gateway at ``url``."""
    levels = []
    for callers in bench.sizes.callers:
        count = invocation_count(bench.sizes.throughput, callers, bench.sizes.per_caller)
        bench.say(f"{label}: await chain, {callers} callers x {count} invocations")
        ids = bench.ids(f"{label}-{callers}", count)
        warmup = bench.ids(f"{label}-{callers}-warm", min(callers, 16))
        levels.append(asyncio.run(http_level(url, ids, warmup, callers, meter)))
    return levels


def run(bench: Bench) -> PartResult:
    system = bench.topology()
    levels = http_levels(bench, system.gateway_url, "gateway", system.meter())
    rss = total_rss_bytes(p.pid for p in system.processes() if p.alive())
    result = PartResult(
        "throughput", data={"levels": levels_json(levels, HTTP_PRODUCT), "rss_after_bytes": rss}
    )
    table = level_table("Await chain through our gateway (FastAPI on uvicorn)")
    for level in levels:
        add_level(table, level)
    result.tables.append(table)
    result.notes.extend([*error_notes(levels), CPU_NOTE])
    result.notes.append(
        f"whole topology RSS after this load: {mib(rss)} MiB "
        "(server + gateway + 9 nodes, from /proc VmRSS)"
    )
    return result
