"""The ratios: the ways to drive the await chain, interleaved, and their ratios.

Measured one part after another, a minute or more apart, the same code's
rate moves on a shared machine as much as the effects the ratios are meant
to show (the CPU per invocation of every process rises and falls together;
see docs/performance.md). So each round runs, back to back, at 16 callers:
the original example's topology (its Flask gateway and services on a server
of their own), our topology through our gateway, the direct SDK client and
the in-process floor (:mod:`benchmarks.loads`); and one caller at a time,
our gateway and the floor again, for the sequential latency. Our gateway's
load sits between the two it is compared with most closely, so each of
those pairs runs back to back, and every other round runs in the reverse
order (:func:`round_order`), so neither side of a pair always goes first.

A ratio is read round by round, each round's two measurements a minute
apart at most, and its value is the median over the rounds
(:func:`paired_ratios`): a drift of the machine's speed across the run
moves both sides of a round together, where medians taken over each side
apart would set a fast minute of one against a slow minute of the other.
"By CPU" does the same with invocations per CPU-second; the sequential
ratio compares the rounds' p50 latencies. ``target`` is the goal set for
each, shown for reference and never asserted. The HTTP loads go through
wrk where it is installed (:mod:`benchmarks.wrk`), each for a time, and
then the direct client's load runs for as long
(:func:`benchmarks.loads.timed_ids`).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from dataclasses import dataclass
from typing import Any

from benchmarks.bench import Bench
from benchmarks.loads import (
    CONTENDERS,
    DIRECT,
    FLOOR,
    LOAD_GENERATOR,
    ORIGINAL,
    OUR_GATEWAY,
    Contender,
    Level,
    level_json,
)
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


CONTENDER_BY_NAME = {contender.name: contender for contender in CONTENDERS}

RATIOS = (
    Ratio(
        "our topology / the original topology",
        "throughput",
        "original",
        1.6,
        "ours (gateway, nodes, server) against the original example's Flask gateway and "
        "services a, b, c on a server of their own",
    ),
    Ratio(
        "our gateway / direct client",
        "throughput",
        "direct",
        0.95,
        "what the HTTP gateway leaves of the SDK client's rate (target: costs at most 5%)",
    ),
    Ratio(
        "whole topology / in-process floor",
        "throughput",
        "floor",
        0.7,
        "separate processes + server + gateway against everything in one process",
    ),
)


@dataclass(frozen=True)
class Entry:
    """One measurement of a round: a contender at a number of callers, under a name."""

    name: str
    contender: Contender
    callers: int | None  # None: the reference number of callers


#: What each round measures, in the order of an even round: the rates at the reference
#: callers (our gateway between the two contenders it is set against most closely), then
#: the sequential latencies.
SEQUENTIAL = "sequential"
FLOOR_SEQUENTIAL = "floor-sequential"
ENTRIES = (
    *(Entry(c.name, c, None) for c in (ORIGINAL, OUR_GATEWAY, DIRECT, FLOOR)),
    Entry(SEQUENTIAL, OUR_GATEWAY, 1),
    Entry(FLOOR_SEQUENTIAL, FLOOR, 1),
)
SEQUENTIAL_LABELS = {
    SEQUENTIAL: "our gateway, one caller at a time",
    FLOOR_SEQUENTIAL: "in-process floor, one caller at a time",
}
#: The sequential await chain's p50 through our gateway: at most this many ms.
SEQUENTIAL_TARGET_MS = 4.0


def rotated[T](round_number: int, entries: tuple[T, ...]) -> tuple[T, ...]:
    """The entries in the order round ``round_number`` runs them: each starts with the next."""
    shift = round_number % len(entries)
    return entries[shift:] + entries[:shift]


def round_order[T](round_number: int, entries: tuple[T, ...]) -> tuple[T, ...]:
    """The entries as listed in even rounds, reversed in odd ones.

    Neighbours stay neighbours, and each goes first in every other round.
    """
    return entries if round_number % 2 == 0 else entries[::-1]


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


def paired_ratios(measured: dict[str, list[LoadResult]]) -> dict[str, dict[str, Any]]:
    """Every ratio whose two contenders were measured: round by round, then the median.

    A round's ratio sets its two measurements against each other (rates; and
    invocations per CPU-second of the product, "by CPU"); the value is the median of
    the rounds' ratios, which are listed too.
    """
    computed = {}
    for ratio in RATIOS:
        tops, bottoms = measured.get(ratio.numerator), measured.get(ratio.denominator)
        if not tops or not bottoms:
            continue
        top_product = CONTENDER_BY_NAME[ratio.numerator].product
        bottom_product = CONTENDER_BY_NAME[ratio.denominator].product
        by_rate, by_cpu = [], []
        for top, bottom in zip(tops, bottoms, strict=True):
            if bottom.per_second:
                by_rate.append(top.per_second / bottom.per_second)
            top_cpu = level_json(top, top_product).get("product_cpu_ms_per_invocation")
            bottom_cpu = level_json(bottom, bottom_product).get("product_cpu_ms_per_invocation")
            if top_cpu and bottom_cpu:
                by_cpu.append(bottom_cpu / top_cpu)
        if not by_rate:
            continue
        computed[ratio.name] = {
            "value": round(statistics.median(by_rate), 3),
            "rounds": [round(value, 3) for value in by_rate],
            "target": ratio.target,
            "by_cpu": round(statistics.median(by_cpu), 3) if by_cpu else None,
            "rounds_by_cpu": [round(value, 3) for value in by_cpu],
            "meaning": ratio.meaning,
        }
    return computed


async def interleave(
    bench: Bench, callers: int, entries: tuple[Entry, ...]
) -> dict[str, list[LoadResult]]:
    """Every entry once per round; each one's measurements, in round order."""
    rounds = bench.sizes.compare_rounds
    measured: dict[str, list[LoadResult]] = {e.name: [] for e in entries}
    async with contextlib.AsyncExitStack() as stack:
        levels: dict[str, Level] = {}
        for entry in entries:
            contender = entry.contender
            if contender.name not in levels:
                levels[contender.name] = await stack.enter_async_context(contender.open(bench))
        for number in range(rounds):
            for entry in round_order(number, entries):
                name, contender = entry.name, entry.contender
                at = entry.callers or callers
                count = bench.sizes.invocations(bench.sizes.compare, at)
                if entry.callers == 1:
                    count = bench.sizes.sequential
                bench.say(
                    f"compare round {number + 1}/{rounds}: {contender.label}, "
                    f"{at} caller(s) x {count} invocations"
                )
                ids = bench.ids(f"cmp-{name}-{number}", count)
                warmup = bench.ids(f"cmp-{name}-{number}-warm", min(at, 16))
                measured[name].append(await levels[contender.name](ids, warmup, at))
    return measured


def sequential_latency(measured: dict[str, list[LoadResult]]) -> dict[str, Any]:
    """The sequential p50s (medians over the rounds), and ours over the floor's, round by round."""
    p50 = {
        name: round(statistics.median(t.latency.p50_ms for t in measured[name]), 3)
        for name in (SEQUENTIAL, FLOOR_SEQUENTIAL)
    }
    rounds = {name: [t.latency.p50_ms for t in measured[name]] for name in p50}
    over = [
        ours / floor
        for ours, floor in zip(rounds[SEQUENTIAL], rounds[FLOOR_SEQUENTIAL], strict=True)
        if floor > 0
    ]
    return {
        "p50_ms": p50,
        "rounds_p50_ms": {name: [round(ms, 3) for ms in values] for name, values in rounds.items()},
        "over_floor": round(statistics.median(over), 2) if over else None,
        "rounds_over_floor": [round(value, 2) for value in over],
        "target_ms": SEQUENTIAL_TARGET_MS,
    }


def run(bench: Bench) -> PartResult:
    callers = min(bench.sizes.callers, key=lambda c: abs(c - REFERENCE_CALLERS))
    rounds = bench.sizes.compare_rounds
    measured = asyncio.run(interleave(bench, callers, ENTRIES))
    contenders = {c.name: median_level(c, measured[c.name]) for c in CONTENDERS}
    sequential = sequential_latency(measured)
    labels = {c.name: c.label for c in CONTENDERS}
    computed = paired_ratios(measured)
    medians = medians_table(
        f"The ratios' contenders, interleaved: {callers} callers, {rounds} round(s), medians",
        "contender",
        contenders,
        labels,
        by_role=False,
    )
    table = Table(
        f"Ratios (await chain, {callers} callers; each round's ratio, and their median)",
        ["ratio", "inv/s per round", "inv/s", "by CPU per round", "by CPU", "target"],
    )
    for name, ratio in computed.items():
        by_cpu = "-" if ratio["by_cpu"] is None else f"{ratio['by_cpu']:.2f}"
        table.add(
            name,
            " ".join(f"{value:.2f}" for value in ratio["rounds"]),
            f"{ratio['value']:.2f}",
            " ".join(f"{value:.2f}" for value in ratio["rounds_by_cpu"]),
            by_cpu,
            f">= {ratio['target']:g}",
        )
    latency = Table(
        f"Sequential await chain, p50 ms (medians of {rounds} round(s))",
        ["measured", "p50 ms per round", "median p50 ms", "target"],
    )
    for name, label in SEQUENTIAL_LABELS.items():
        latency.add(
            label,
            " ".join(f"{ms:.1f}" for ms in sequential["rounds_p50_ms"][name]),
            f"{sequential['p50_ms'][name]:.2f}",
            f"<= {SEQUENTIAL_TARGET_MS:g}" if name == SEQUENTIAL else "",
        )
    over = sequential["over_floor"]
    latency.add(
        "ours over the floor",
        " ".join(f"{value:.2f}" for value in sequential["rounds_over_floor"]),
        "-" if over is None else f"{over:.2f}x",
        "",
    )
    data = {
        "callers": callers,
        "rounds": rounds,
        "load_generator": LOAD_GENERATOR,
        "contenders": contenders,
        "ratios": computed,
        "sequential": sequential,
    }
    return PartResult(
        "compare",
        data=data,
        tables=[medians, table, latency],
        notes=[
            f"HTTP load generator: {LOAD_GENERATOR}",
            "each round runs every contender back to back, every other round in the reverse "
            "order; a ratio is the median of the rounds' ratios",
            "by CPU: the denominator's product CPU per invocation over the numerator's, i.e. the "
            "ratio of invocations per CPU-second: what the inv/s ratio would be if the run were "
            "CPU-bound on cores it had to itself (steadier than inv/s on a shared machine)",
        ],
    )
