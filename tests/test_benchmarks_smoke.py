"""The benchmark harness's own pieces work; no speed is asserted (speed lives in benchmarks/)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from benchmarks import compare, floor, ratios
from benchmarks.bench import Bench, Sizes
from benchmarks.cli import app
from benchmarks.measure import CpuMeter, Summary, drive, percentile
from benchmarks.report import PartResult


def test_percentiles_of_known_values() -> None:
    values = list(range(1, 102))  # 1..101: the inclusive method puts p50 at 51, p99 at 100
    assert percentile(values, 50) == 51
    assert percentile(values, 99) == 100
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile(values, 100)
    summary = Summary.of([0.001, 0.002, 0.003])
    assert (summary.count, summary.p50_ms, summary.max_ms) == (3, 2.0, 3.0)
    assert Summary.of([]).to_json()["p50_ms"] is None


def test_drive_runs_every_id_once_and_counts_errors() -> None:
    seen: list[str] = []

    async def call(invocation_id: str) -> None:
        await asyncio.sleep(0)
        seen.append(invocation_id)
        if invocation_id == "bad":
            raise RuntimeError("no")

    ids = [f"i{n}" for n in range(20)] + ["bad"]
    result = asyncio.run(drive(call, ids, callers=4, meter=CpuMeter.driver_only()))
    assert sorted(seen) == sorted(ids)
    assert (result.invocations, result.errors, result.latency.count) == (21, 1, 20)
    assert result.first_error is not None and result.first_error.startswith("bad:")
    assert set(result.cpu_s) == {"driver"}


def test_in_process_floor_runs_the_await_chain(tmp_path: Path) -> None:
    sizes = Sizes.quick().with_(callers=(2,), throughput=6, per_caller=1)
    bench = Bench(sizes, procs=None, log_dir=tmp_path, console=Console(quiet=True))  # type: ignore[arg-type]
    result = floor.run(bench)
    level = result.data["levels"]["2"]
    assert (level["invocations"], level["errors"]) == (6, 0)
    assert level["invocations_per_s"] > 0


def test_ratios_need_both_parts() -> None:
    def part(name: str, rate: float) -> PartResult:
        level = {"invocations_per_s": rate, "product_cpu_ms_per_invocation": 10.0}
        return PartResult(name, data={"levels": {"16": level}})

    computed = ratios.compute(
        {"throughput": part("throughput", 30), "direct": part("direct", 40)}, (1, 16, 64)
    )
    assert computed.data["gateway / direct client"]["value"] == 0.75
    assert computed.data["gateway / direct client"]["by_cpu"] == 1.0
    assert "gateway / Flask baseline" not in computed.data


def test_unknown_part_is_a_clear_usage_error() -> None:
    result = CliRunner().invoke(app, ["--only", "roundtrip,nope"])
    assert result.exit_code == 2
    assert "unknown part(s) nope" in result.output
    assert "valid: roundtrip" in result.output


def test_ratios_prefer_the_interleaved_medians() -> None:
    def part(name: str, rate: float) -> PartResult:
        level = {"invocations_per_s": rate, "product_cpu_ms_per_invocation": 10.0}
        return PartResult(name, data={"levels": {"16": level}})

    interleaved = PartResult(
        "compare",
        data={
            "callers": 16,
            "contenders": {
                "throughput": {"invocations_per_s": 90.0, "product_cpu_ms_per_invocation": 12.0},
                "direct": {"invocations_per_s": 100.0, "product_cpu_ms_per_invocation": 10.8},
            },
        },
    )
    results = {
        "throughput": part("throughput", 30),
        "direct": part("direct", 40),
        "floor": part("floor", 300),
        "compare": interleaved,
    }
    computed = ratios.compute(results, (1, 16, 64)).data
    assert computed["gateway / direct client"]["value"] == 0.9
    assert computed["gateway / direct client"]["by_cpu"] == 0.9
    assert computed["gateway / direct client"]["measured"] == "interleaved"
    assert computed["whole topology / in-process floor"]["measured"] == "mixed"


def test_each_compare_round_starts_with_the_next_contender() -> None:
    orders = [compare.rotated(n) for n in range(len(compare.CONTENDERS))]
    assert [order[0] for order in orders] == list(compare.CONTENDERS)
    assert all(sorted(order) == sorted(compare.CONTENDERS) for order in orders)
