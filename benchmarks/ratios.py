"""The ratios the issue asks for, from the parts' results of the same run.

Absolute numbers move with whatever else the machine does; ratios of two
measurements taken on the same machine move much less, and least when the
two are taken in alternation: so a ratio uses the interleaved medians of the
``compare`` part when it ran, and the separate parts' levels otherwise (the
``measured`` column says which). Each ratio compares await-chain
invocations/s at the same number of concurrent callers (16, or the nearest
level that ran). ``target`` is the goal issue 6
sets, shown for reference; nothing here asserts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def level_at(result: PartResult | None, callers: int) -> dict[str, Any] | None:
    if result is None or result.error:
        return None
    return result.data.get("levels", {}).get(str(callers))


def contender_at(
    results: dict[str, PartResult], part: str, callers: int
) -> tuple[dict[str, Any] | None, str]:
    """``part``'s numbers at ``callers``: interleaved medians if they ran, else its own level."""
    compare = results.get("compare")
    if compare is not None and not compare.error and compare.data.get("callers") == callers:
        level = compare.data.get("contenders", {}).get(part)
        if level:
            return level, "interleaved"
    return level_at(results.get(part), callers), "separate parts"


def _brief(level: dict[str, Any]) -> dict[str, Any]:
    return {
        "invocations_per_s": level["invocations_per_s"],
        "product_cpu_ms_per_invocation": level.get("product_cpu_ms_per_invocation"),
    }


def reference_callers(levels: tuple[int, ...]) -> int:
    return min(levels, key=lambda c: abs(c - REFERENCE_CALLERS))


def compute(results: dict[str, PartResult], levels: tuple[int, ...]) -> PartResult:
    """A pseudo-part holding every ratio whose two parts both ran."""
    callers = reference_callers(levels)
    out = PartResult("ratios")
    table = Table(
        f"Ratios (await chain invocations/s, {callers} concurrent callers)",
        ["ratio", "inv/s ratio", "target", "by CPU", "inv/s", "product CPU ms/inv", "measured"],
    )
    data: dict[str, Any] = {"callers": callers}
    for ratio in RATIOS:
        top, top_source = contender_at(results, ratio.numerator, callers)
        bottom, bottom_source = contender_at(results, ratio.denominator, callers)
        if not top or not bottom or not bottom["invocations_per_s"]:
            continue
        source = top_source if top_source == bottom_source else "mixed"
        value = top["invocations_per_s"] / bottom["invocations_per_s"]
        top_cpu = top.get("product_cpu_ms_per_invocation")
        bottom_cpu = bottom.get("product_cpu_ms_per_invocation")
        by_cpu = bottom_cpu / top_cpu if top_cpu and bottom_cpu else None
        data[ratio.name] = {
            "value": round(value, 3),
            "target": ratio.target,
            "by_cpu": None if by_cpu is None else round(by_cpu, 3),
            "numerator": {"part": ratio.numerator, **_brief(top)},
            "denominator": {"part": ratio.denominator, **_brief(bottom)},
            "meaning": ratio.meaning,
            "measured": source,
        }
        table.add(
            ratio.name,
            f"{value:.2f}",
            f">= {ratio.target:g}",
            "-" if by_cpu is None else f"{by_cpu:.2f}",
            f"{top['invocations_per_s']:.1f} / {bottom['invocations_per_s']:.1f}",
            "-" if not (top_cpu and bottom_cpu) else f"{top_cpu:.1f} / {bottom_cpu:.1f}",
            source,
        )
    out.data = data
    if table.rows:
        out.tables.append(table)
        out.notes.append(
            "by CPU: the denominator's product CPU per invocation over the numerator's, i.e. the "
            "ratio of invocations per CPU-second: what the inv/s ratio would be if the run were "
            "CPU-bound on cores it had to itself (steadier than inv/s on a shared machine)"
        )
    else:
        out.notes.append("no ratio: each needs the throughput part and the part it compares with")
    return out
