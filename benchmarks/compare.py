"""Part: the ratios' four contenders at 16 callers, interleaved so the machine's drift cancels out.

Measured one part after another, a minute or more apart, the same code's
rate moves by 10 to 20 % on this shared machine (the CPU per invocation of
every process rises and falls together), which is as large as the effects
the ratios are meant to show. So each round runs our gateway, the Flask
baseline, the direct SDK client and the in-process floor back to back, each
round starting with the next one, and a contender's numbers are the medians
over the rounds. :mod:`benchmarks.ratios` prefers these to the separate
parts' levels when both ran.

The contenders are named after the parts whose load they repeat
(``throughput`` is our gateway).
"""

from __future__ import annotations

import asyncio
import signal
import statistics
from typing import Any

from benchmarks import direct, floor, ratios
from benchmarks.baseline import start_baseline
from benchmarks.bench import Bench
from benchmarks.measure import LoadResult, invocation_count
from benchmarks.processes import Topology
from benchmarks.report import HTTP_PRODUCT, PartResult, Table, levels_json
from benchmarks.throughput import http_level
from tests.support import Process

CONTENDERS = ("throughput", "baseline", "direct", "floor")
LABELS = {
    "throughput": "our gateway",
    "baseline": "Flask-style baseline gateway",
    "direct": "direct SDK client",
    "floor": "in-process floor",
}
#: The processes whose CPU counts as the product's, per contender.
PRODUCT = {
    "throughput": HTTP_PRODUCT,
    "baseline": HTTP_PRODUCT,
    "direct": ("server", "nodes", "driver"),
    "floor": ("driver",),
}


def rotated(round_number: int) -> tuple[str, ...]:
    """The contenders in this round's order: each round starts with the next one."""
    shift = round_number % len(CONTENDERS)
    return CONTENDERS[shift:] + CONTENDERS[:shift]


def median_level(name: str, turns: list[LoadResult]) -> dict[str, Any]:
    """One contender's rounds as one level: medians of its rate and CPU, plus each round's rate."""
    levels = [levels_json([turn], PRODUCT[name])[str(turn.callers)] for turn in turns]
    cpu = [level["product_cpu_ms_per_invocation"] for level in levels]
    return {
        "invocations_per_s": round(statistics.median(lv["invocations_per_s"] for lv in levels), 2),
        "product_cpu_ms_per_invocation": round(statistics.median(cpu), 2),
        "rounds_invocations_per_s": [lv["invocations_per_s"] for lv in levels],
        "errors": sum(lv["errors"] for lv in levels),
    }


async def interleave(
    bench: Bench, system: Topology, baseline: Process, baseline_url: str, callers: int
) -> dict[str, list[LoadResult]]:
    """Every contender once per round; each one's measurements, in round order."""
    count = invocation_count(bench.sizes.compare, callers, bench.sizes.per_caller)
    client = await direct.connect_client(system.server_url, f"{direct.GROUP}-cmp-{bench.tag}")
    gateway_meter, baseline_meter = system.meter(), system.meter(gateway=baseline)
    direct_meter = system.meter(with_gateway=False)  # our gateway is up, idle, not in the path
    measured: dict[str, list[LoadResult]] = {name: [] for name in CONTENDERS}
    try:
        for number in range(bench.sizes.compare_rounds):
            for name in rotated(number):
                bench.say(
                    f"compare round {number + 1}/{bench.sizes.compare_rounds}: {LABELS[name]}, "
                    f"{callers} callers x {count} invocations"
                )
                ids = bench.ids(f"cmp-{name}-{number}", count)
                warmup = bench.ids(f"cmp-{name}-{number}-warm", min(callers, 16))
                if name == "throughput":
                    turn = await http_level(system.gateway_url, ids, warmup, callers, gateway_meter)
                elif name == "baseline":
                    turn = await http_level(baseline_url, ids, warmup, callers, baseline_meter)
                elif name == "direct":
                    turn = await direct.client_level(client, ids, warmup, callers, direct_meter)
                else:
                    turn = await floor.floor_level(ids, warmup, callers)
                measured[name].append(turn)
    finally:
        await client.stop()
    return measured


def run(bench: Bench) -> PartResult:
    system = bench.topology()
    callers = ratios.reference_callers(bench.sizes.callers)
    baseline, baseline_url = start_baseline(bench, system)
    try:
        measured = asyncio.run(interleave(bench, system, baseline, baseline_url, callers))
    finally:
        baseline.kill(signal.SIGTERM)
    contenders = {name: median_level(name, turns) for name, turns in measured.items()}
    result = PartResult(
        "compare",
        data={"callers": callers, "rounds": bench.sizes.compare_rounds, "contenders": contenders},
    )
    table = Table(
        f"The ratios' contenders, interleaved: {callers} callers, "
        f"{bench.sizes.compare_rounds} round(s), medians",
        ["contender", "inv/s per round", "median inv/s", "median product CPU ms/inv", "errors"],
    )
    for name in CONTENDERS:
        level = contenders[name]
        table.add(
            LABELS[name],
            " ".join(f"{rate:.0f}" for rate in level["rounds_invocations_per_s"]),
            f"{level['invocations_per_s']:.1f}",
            f"{level['product_cpu_ms_per_invocation']:.1f}",
            str(level["errors"]),
        )
    result.tables.append(table)
    result.notes.append(
        "each round runs every contender back to back (starting with the next one each round); "
        "the ratios below use these medians"
    )
    return result
