"""The harness and the benchmarks' pieces work; speed is never asserted (see benchmarks/).

Here, the pieces that start no process; tests/e2e/test_benchmarks_smoke.py starts some.
"""

from __future__ import annotations

import ast
import asyncio
import os
import socket
import types
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from benchmarks import compare, hops, loads, wrk
from benchmarks.bench import Bench, Sizes
from benchmarks.cli import app
from benchmarks.measure import CpuMeter, Summary, drive, percentile
from harness.isolation import free_port, isolated_env
from harness.waiting import wait_until
from tests.support import ROOT

# ── harness ──────────────────────────────────────────────────────────────────


def test_a_free_port_can_be_bound_and_the_env_is_isolated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
    monkeypatch.setenv("RESONATE_URL", "http://elsewhere:1")
    monkeypatch.setenv("ASYNCRPC_RUN_DIR", "/elsewhere")
    env = isolated_env(tmp_path, EXTRA="1")
    assert "RESONATE_URL" not in env
    assert env["ASYNCRPC_RUN_DIR"] == str(tmp_path)
    assert (env["PYTHONUNBUFFERED"], env["EXTRA"]) == ("1", "1")


def test_wait_until_returns_the_value_or_names_what_never_happened() -> None:
    answers = iter([0, None, 7])
    assert wait_until(lambda: next(answers), 5, "seven", poll=0.001) == 7
    with pytest.raises(TimeoutError, match="waiting for nothing"):
        wait_until(lambda: False, 0.05, "nothing", poll=0.01)


def test_neither_the_benchmarks_nor_the_harness_import_the_tests() -> None:
    offenders = []
    for path in sorted([*(ROOT / "benchmarks").rglob("*.py"), *(ROOT / "harness").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "tests"
            ]
    assert offenders == []


# ── benchmarks ───────────────────────────────────────────────────────────────


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
    result = asyncio.run(drive(call, iter(ids), callers=4, meter=CpuMeter.driver_only()))
    assert sorted(seen) == sorted(ids)
    assert (result.invocations, result.errors, result.latency.count) == (21, 1, 20)
    assert result.first_error is not None and result.first_error.startswith("bad:")
    assert set(result.cpu_s) == {"driver"}


def test_a_wrk_load_counts_its_cpu_over_the_invocations_it_left_in_flight_too() -> None:
    # 16 connections: each leaves one request unanswered when wrk's time is up, and the
    # product runs its invocation to the end inside the CPU's window all the same.
    numbers = {"answered": 984, "bad": 0, "socket_errors": 0, "duration_us": 5_000_000}
    numbers |= {"p50_us": 60_000, "p99_us": 90_000, "mean_us": 61_000.0, "max_us": 95_000}
    result = wrk.measured(numbers, callers=16, elapsed=5.01, cpu_s={"server": 3.0})
    assert result.per_second == 984 / 5.0  # the rate: answered ones only
    assert result.cpu_ms_per_invocation() == {"server": 3.0}  # 3 s over 1000 invocations
    assert result.to_json()["unanswered"] == 16


def test_a_timed_load_numbers_its_ids_until_its_time_is_up() -> None:
    ticks = iter([10.0, 11.0, 14.9, 15.0, 15.1])
    ids = loads.timed_ids("cmp-direct-0-abc", 5, cap=100, clock=lambda: next(ticks))
    assert list(ids) == ["cmp-direct-0-abc-0", "cmp-direct-0-abc-1", "cmp-direct-0-abc-2"]
    assert list(loads.timed_ids("p", 5, cap=2, clock=lambda: 0.0)) == ["p-0", "p-1"]


def test_in_process_floor_runs_the_await_chain(tmp_path: Path) -> None:
    sizes = Sizes.quick().with_(callers=(2,), throughput=6, per_caller=1)
    bench = Bench(sizes, procs=None, log_dir=tmp_path, console=Console(quiet=True))  # type: ignore[arg-type]
    result = loads.FLOOR.run(bench)
    level = result.data["levels"]["2"]
    assert (level["invocations"], level["errors"]) == (6, 0)
    assert level["invocations_per_s"] > 0
    assert level["product_cpu_ms_per_invocation"] >= 0  # /proc counts CPU in 10 ms ticks


def test_ratios_are_read_round_by_round_and_need_both_contenders() -> None:
    from benchmarks.measure import LoadResult

    def turn(rate: float, product_cpu_ms: float, role: str) -> LoadResult:
        seconds = 100 / rate
        cpu = {role: product_cpu_ms / 10}  # over 100 invocations
        return LoadResult(16, 100, 0, seconds, Summary.of([0.1]), cpu_s=cpu)

    # The machine slows by half in the second round: both sides of the round with it.
    measured = {
        "throughput": [turn(90.0, 12.0, "gateway"), turn(45.0, 24.0, "gateway")],
        "direct": [turn(100.0, 10.8, "driver"), turn(50.0, 21.6, "driver")],
    }
    computed = compare.paired_ratios(measured)
    ratio = computed["our gateway / direct client"]
    assert ratio["rounds"] == [0.9, 0.9] and ratio["value"] == 0.9
    assert ratio["rounds_by_cpu"] == [0.9, 0.9] and ratio["by_cpu"] == 0.9
    assert ratio["target"] == 0.95
    assert set(computed) == {"our gateway / direct client"}


def test_the_sequential_latency_is_read_against_the_floor_round_by_round() -> None:
    from benchmarks.measure import LoadResult

    def turn(p50_ms: float) -> LoadResult:
        return LoadResult(1, 100, 0, 1.0, Summary.of([p50_ms / 1000] * 3))

    measured = {
        compare.SEQUENTIAL: [turn(6.0), turn(9.0), turn(6.6)],
        compare.FLOOR_SEQUENTIAL: [turn(2.0), turn(3.0), turn(1.65)],
    }
    latency = compare.sequential_latency(measured)
    assert latency["rounds_over_floor"] == [3.0, 3.0, 4.0]
    assert latency["over_floor"] == 3.0
    assert latency["p50_ms"] == {compare.SEQUENTIAL: 6.6, compare.FLOOR_SEQUENTIAL: 2.0}


def test_unknown_part_is_a_clear_usage_error() -> None:
    result = CliRunner().invoke(app, ["--only", "roundtrip,nope"])
    assert result.exit_code == 2
    assert "unknown part(s) nope" in result.output
    assert "valid: roundtrip" in result.output


def test_each_compare_round_starts_with_the_next_contender() -> None:
    orders = [compare.rotated(n, loads.CONTENDERS) for n in range(len(loads.CONTENDERS))]
    assert [order[0] for order in orders] == list(loads.CONTENDERS)
    assert all(
        sorted(o.name for o in order) == sorted(c.name for c in loads.CONTENDERS)
        for order in orders
    )


def test_compare_runs_each_pair_back_to_back_each_side_first_in_turn() -> None:
    names = [[e.name for e in compare.round_order(n, compare.ENTRIES)] for n in range(4)]
    for pair in (("original", "throughput"), ("throughput", "direct")):
        for order in names:
            assert abs(order.index(pair[0]) - order.index(pair[1])) == 1
        firsts = [min(pair, key=order.index) for order in names]
        assert firsts == [pair[0], pair[1], pair[0], pair[1]]
    assert names[1] == names[0][::-1]


def test_the_pg_part_measures_idle_cpu_and_reports_its_ratios() -> None:
    from benchmarks import pg_history
    from benchmarks.measure import LoadResult

    cores = asyncio.run(pg_history.idle_cores({"me": [os.getpid()]}, 0.2))
    assert set(cores) == {"me"} and cores["me"] >= 0

    def turn(rate: float, cpu_ms: float) -> LoadResult:
        seconds = 100 / rate
        return LoadResult(16, 100, 0, seconds, Summary.of([0.1]), cpu_s={"server": cpu_ms / 10})

    measured = pg_history.Measured(
        rounds={
            "fresh": [turn(50, 20)],
            "30k": [turn(45, 20)],
            "b2": [turn(48, 25)],
            "embedded": [turn(200, 5)],
        },
        idle={"30k": {"postgres": 0.01, "all": 0.03}},
        stored={"30k": 30_000},
        statements={
            "fresh": [
                {("gateway", "requests (resonate_rpc)"): 2.0, ("nodes", "dequeue_execute"): 5.0},
                {("gateway", "requests (resonate_rpc)"): 2.0, ("nodes", "dequeue_execute"): 7.0},
                {("gateway", "requests (resonate_rpc)"): 2.0, ("nodes", "dequeue_execute"): 6.0},
            ]
        },
    )
    result = pg_history.report(16, 1, measured)
    assert result.data["ratios"]["30k / fresh"]["value"] == 0.9
    assert result.data["ratios"]["b=2 / fresh"]["by_cpu"] == 0.8
    assert [row[0] for row in result.tables[2].rows] == ["resonate-pg, 30k stored promises"]
    assert result.data["statements_per_invocation"]["fresh"] == {
        "all": 8.0,
        "by_process": {"gateway": 2.0, "nodes": 6.0},
        "by_statement": {"requests (resonate_rpc)": 2.0, "dequeue_execute": 6.0},
    }
    assert [row[:4] for row in result.tables[3].rows] == [
        ["resonate-pg, fresh", "2.0", "6.0", "8.0"]
    ]


def test_hops_split_a_traced_invocation_into_hops_that_add_up() -> None:
    def at(us: int, process: str, event: str, what: str = "-") -> hops.Stamp:
        return hops.Stamp(us * 1000, process, event, what)

    stamps = [
        at(0, hops.CLIENT, "post"),
        at(100, hops.GATEWAY, "send", "promise.create"),
        at(150, hops.SERVER, "in"),
        at(170, hops.SERVER, "commit", "1"),
        at(200, hops.SERVER, "committed", "1"),
        at(210, hops.SERVER, "out", "promise.create"),
        at(220, hops.SERVER, "push", "execute"),
        at(300, "a", "msg", "execute"),
        at(320, hops.GATEWAY, "answer", "promise.create"),
        at(400, "a", "send", "task.acquire"),
        at(900, hops.GATEWAY, "msg", "unblock"),
        at(1000, hops.CLIENT, "answer"),
        at(5000, hops.SERVER, "in"),  # after the answer: no invocation's
    ]
    found = hops.invocations(stamps)
    assert len(found) == 1 and len(found[0]) == 12
    data = hops.profile(found)
    total = sum(h["ms_per_invocation"] for h in data["hops"].values())
    assert data["p50_ms"] == 1.0 and abs(total - 1.0) < 1e-6
    assert data["hops"]["server: SQLite commit"]["ms_per_invocation"] == 0.03
    assert data["hops"]["gateway: HTTP request in to its first protocol request"]["share"] == 0.1
    assert data["server_requests_per_invocation"] == 1


def test_the_start_up_against_another_revision_alternates_and_pairs_its_rounds() -> None:
    """Each pair runs both codes, the first of a pair alternating; medians are per pair."""
    from benchmarks.startup import against_base

    ran: list[str] = []
    seconds = {"base": [3.0, 4.0, 5.0], "this": [1.5, 3.0, 5.0]}

    def one_round(bench: object, name: str, code: Path | None) -> dict[str, object]:
        key = "this" if code is None else "base"
        assert code in (None, Path("base-code"))
        ran.append(key)
        ready = seconds[key][len([k for k in ran if k == key]) - 1]
        return {"ready_s": ready, "import_s": 1.0, "ratio": ready, "load_1m": 1.0}

    bench = types.SimpleNamespace(sizes=Sizes(startup_ab_rounds=3), say=lambda message: None)
    data = against_base(bench, "abc123", Path("base-code"), one_round)  # type: ignore[arg-type]
    assert ran == ["base", "this", "this", "base", "base", "this"]
    assert data["revision"] == "abc123" and len(data["pairs"]) == 3
    assert data["base_ready_s_median"] == 4.0 and data["this_ready_s_median"] == 3.0
    assert data["this_over_base_median"] == 0.75  # 0.5, 0.75 and 1.0


def test_the_start_up_compiles_the_project_only_when_the_sdk_has_its_bytecode(
    tmp_path: Path,
) -> None:
    """Both sides of the start-up ratio load bytecode, or both compile from source."""
    from benchmarks.startup import compile_like_the_sdk

    package = tmp_path / "asyncrpc"
    package.mkdir()
    (package / "module.py").write_text("ANSWER = 3\n")
    assert compile_like_the_sdk(tmp_path, sdk_compiled=lambda: False) is False
    assert not (package / "__pycache__").exists()
    assert compile_like_the_sdk(tmp_path, sdk_compiled=lambda: True) is True
    assert [p.name.split(".")[0] for p in (package / "__pycache__").iterdir()] == ["module"]
