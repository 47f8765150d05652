"""The ratios: the four ways to drive the await chain at 16 callers, interleaved, and their ratios.

Measured one part after another, a minute or more apart, the same code's
rate moves on a shared machine as much as the effects the ratios are meant
to show (the CPU per invocation of every process rises and falls together;
see docs/performance.md). So each round runs our gateway, the Flask
baseline, the direct SDK client and the in-process floor back to back
(:mod:`benchmarks.loads`), each round starting with the next one, and a
contender's numbers are the medians over the rounds. Each ratio compares
those medians' invocations/s (and, "by CPU", their invocations per
CPU-second); ``target`` is the goal set for it, shown for reference and never
asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from dataclasses import dataclass
from typing import Any

from benchmarks.bench import Bench
from benchmarks.loads import CONTENDERS, Contender, Level, level_json
from benchmarks.measure import LoadResult
from benchmarks.report import PartResult, Table

REFERENCE_CALLERS = 16


@dataclass(frozen=True)
class Ratio:
    name: str
    numerator: str
    denominator: str
    target: float
    meaning: str


RATIOS = (
    Ratio(
        "gateway / direct client",
        "throughput",
        "direct",
        0.85,
        "what the HTTP gateway leaves of the SDK client's rate (target: costs at most 15%)",
    ),
    Ratio(
        "gateway / Flask baseline",
        "throughput",
        "baseline",
        1.5,
        "our gateway against the original example's gateway design",
    ),
    Ratio(
        "whole topology / in-process floor",
        "throughput",
        "floor",
        0.7,
        "separate processes + server + gateway against everything in one process",
    ),
)


def rotated(
    round_number: int, contenders: tuple[Contender, ...] = CONTENDERS
) -> tuple[Contender, ...]:
    """The contenders in the order round ``round_number`` runs them: each starts with the next."""
    shift = round_number % len(contenders)
    return contenders[shift:] + contenders[:shift]


def median_level(contender: Contender, turns: list[LoadResult]) -> dict[str, Any]:
    """One contender's rounds as one level: medians of its rate and CPU, plus each round's rate."""
    levels = [level_json(turn, contender.product) for turn in turns]
    cpu = [level["product_cpu_ms_per_invocation"] for level in levels]
    return {
        "invocations_per_s": round(statistics.median(lv["invocations_per_s"] for lv in levels), 2),
        "product_cpu_ms_per_invocation": round(statistics.median(cpu), 2),
        "rounds_invocations_per_s": [lv["invocations_per_s"] for lv in levels],
        "errors": sum(lv["errors"] for lv in levels),
        "cpu_ms_per_invocation_by_role": {
            role: round(statistics.median(t.cpu_ms_per_invocation().get(role, 0) for t in turns), 2)
            for role in turns[0].cpu_ms_per_invocation()
        },
    }


def medians_table(
    title: str, first: str, levels: dict[str, dict[str, Any]], labels: dict[str, str], by_role: bool
) -> Table:
    """One row per contender: its rate in each round, the medians (and its CPU by role)."""
    columns = [first, "inv/s per round", "median inv/s", "median product CPU ms/inv"]
    table = Table(title, [*columns, *(["by role"] if by_role else []), "errors"])
    for name, level in levels.items():
        roles = level["cpu_ms_per_invocation_by_role"].items()
        table.add(
            labels[name],
            " ".join(f"{rate:.0f}" for rate in level["rounds_invocations_per_s"]),
            f"{level['invocations_per_s']:.1f}",
            f"{level['product_cpu_ms_per_invocation']:.1f}",
            *([" ".join(f"{role} {ms:.1f}" for role, ms in roles)] if by_role else []),
            level["errors"],
        )
    return table


def ratios(contenders: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every ratio whose two contenders were measured, by rate and by CPU."""
    computed = {}
    for ratio in RATIOS:
        top, bottom = contenders.get(ratio.numerator), contenders.get(ratio.denominator)
        if not top or not bottom or not bottom["invocations_per_s"]:
            continue
        top_cpu = top.get("product_cpu_ms_per_invocation")
        bottom_cpu = bottom.get("product_cpu_ms_per_invocation")
        by_cpu = bottom_cpu / top_cpu if top_cpu and bottom_cpu else None
        computed[ratio.name] = {
            "value": round(top["invocations_per_s"] / bottom["invocations_per_s"], 3),
            "target": ratio.target,
            "by_cpu": None if by_cpu is None else round(by_cpu, 3),
            "meaning": ratio.meaning,
        }
    return computed


async def interleave(
    bench: Bench, callers: int, contenders: tuple[Contender, ...] = CONTENDERS
) -> dict[str, list[LoadResult]]:
    """Every contender once per round; each one's measurements, in round order."""
    count = bench.sizes.invocations(bench.sizes.compare, callers)
    rounds = bench.sizes.compare_rounds
    measured: dict[str, list[LoadResult]] = {c.name: [] for c in contenders}
    async with contextlib.AsyncExitStack() as stack:
        levels: dict[str, Level] = {}
        for contender in contenders:
            levels[contender.name] = await stack.enter_async_context(contender.open(bench))
        for number in range(rounds):
            for contender in rotated(number, contenders):
                name = contender.name
                bench.say(
                    f"compare round {number + 1}/{rounds}: {contender.label}, "
                    f"{callers} callers x {count} invocations"
                )
                ids = bench.ids(f"cmp-{name}-{number}", count)
                warmup = bench.ids(f"cmp-{name}-{number}-warm", min(callers, 16))
                measured[name].append(await levels[name](ids, warmup, callers))
    return measured


def run(bench: Bench) -> PartResult:
    callers = min(bench.sizes.callers, key=lambda c: abs(c - REFERENCE_CALLERS))
    rounds = bench.sizes.compare_rounds
    measured = asyncio.run(interleave(bench, callers))
    contenders = {c.name: median_level(c, measured[c.name]) for c in CONTENDERS}
    labels = {c.name: c.label for c in CONTENDERS}
    computed = ratios(contenders)
    medians = medians_table(
        f"The ratios' contenders, interleaved: {callers} callers, {rounds} round(s), medians",
        "contender",
        contenders,
        labels,
        by_role=False,
    )
    table = Table(
        f"Ratios (await chain, {callers} callers, interleaved medians)",
        ["ratio", "inv/s ratio", "by CPU", "target"],
    )
    for name, ratio in computed.items():
        by_cpu = "-" if ratio["by_cpu"] is None else f"{ratio['by_cpu']:.2f}"
        table.add(name, f"{ratio['value']:.2f}", by_cpu, f">= {ratio['target']:g}")
    data = {"callers": callers, "rounds": rounds, "contenders": contenders, "ratios": computed}
    return PartResult(
        "compare",
        data=data,
        tables=[medians, table],
        notes=[
            "each round runs every contender back to back, starting with the next one each round",
            "by CPU: the denominator's product CPU per invocation over the numerator's, i.e. the "
            "ratio of invocations per CPU-second: what the inv/s ratio would be if the run were "
            "CPU-bound on cores it had to itself (steadier than inv/s on a shared machine)",
        ],
    )
