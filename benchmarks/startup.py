"""The ``startup`` part: start-up time of the whole topology, and its memory.

Directly: the server is started, and once it answers ``/healthz`` the gateway
and the nine nodes are started at once (each a ``python -m asyncrpc``
process, as ``asyncrpc up`` runs them); ready means every node printed its
ready line and the gateway's ``/healthz`` answered 200. Memory is RSS (VmRSS
from /proc) summed over the eleven processes, once ready and idle.

Then the same through the launcher, when ``asyncrpc up --detach`` is
available: the command's wall time until it returns (it returns once
everything is ready), and RSS summed over the launcher and every replica its
state file lists; ``asyncrpc down`` stops them (and
:class:`~harness.launched.Launched` anything left, by pid).
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

from asyncrpc import config
from benchmarks.bench import Bench, BenchError
from benchmarks.measure import rss_bytes, total_rss_bytes
from benchmarks.report import PartResult, Table, mib, secs
from harness.isolation import free_port
from harness.launched import Launched
from harness.processes import ASYNCRPC, READY_TIMEOUT
from harness.system import start_system

#: Let start-up garbage settle before reading memory.
SETTLE_S = 1.0


def direct_round(bench: Bench, i: int) -> dict[str, Any]:
    with bench.procs.scope():
        system = start_system(bench.procs, bench.log_dir / f"startup-{i}.db")
        time.sleep(SETTLE_S)
        processes = system.processes()
        return {
            "ready_s": round(system.ready_after, 3),
            "rss_bytes": total_rss_bytes(p.pid for p in processes),
            "rss_by_process_bytes": {p.name: rss_bytes(p.pid) for p in processes},
            "processes": len(processes),
        }


def launcher_unavailable(bench: Bench) -> str | None:
    """None when `asyncrpc up --detach` can be used, else why not."""
    try:
        shown = subprocess.run(
            [*ASYNCRPC, "up", "--help"],
            capture_output=True,
            text=True,
            env=dict(bench.procs.base_env),
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        return "`asyncrpc up --help` did not answer within 60 s"
    if shown.returncode != 0 or "--detach" not in shown.stdout:
        return "`asyncrpc up --detach` is not available"
    return None


def launcher_round(bench: Bench, i: int) -> dict[str, Any]:
    run_dir = bench.log_dir / f"launcher-{i}"
    env = {**bench.procs.base_env, config.ENV_RUN_DIR: str(run_dir)}
    launched = Launched(run_dir, env)
    ports = ["--server-port", str(free_port()), "--gateway-port", str(free_port())]
    began = time.monotonic()
    try:
        up = subprocess.run(
            [*ASYNCRPC, "up", "--detach", "--run-dir", str(run_dir), *ports],
            capture_output=True,
            text=True,
            env=env,
            timeout=3 * READY_TIMEOUT,
        )
        elapsed = time.monotonic() - began
        launched.remember()
        if up.returncode != 0:
            raise BenchError(f"asyncrpc up --detach exited {up.returncode}: {up.stderr[-500:]}")
        time.sleep(SETTLE_S)
        pids = launched.alive()
        return {
            "ready_s": round(elapsed, 3),
            "rss_bytes": total_rss_bytes(pids),
            "processes": len(pids),
        }
    finally:
        launched.stop()


def timed_rounds(
    bench: Bench, how: str, one_round: Callable[[Bench, int], dict[str, Any]]
) -> dict[str, Any]:
    """``startup_rounds`` start-ups one way: each one's numbers, and their medians."""
    rounds = []
    for i in range(bench.sizes.startup_rounds):
        bench.say(f"start-up: {how}, round {i + 1}/{bench.sizes.startup_rounds}")
        rounds.append(one_round(bench, i))
    return {
        "rounds": rounds,
        "ready_s_median": statistics.median(r["ready_s"] for r in rounds),
        "rss_bytes_median": statistics.median(r["rss_bytes"] for r in rounds),
    }


def run(bench: Bench) -> PartResult:
    result = PartResult("startup")
    table = Table(
        f"Start-up of server + gateway + 9 nodes (median of {bench.sizes.startup_rounds})",
        ["how", "to ready s", "RSS MiB (sum)", "processes"],
    )
    ways: list[tuple[str, str, Callable[[Bench, int], dict[str, Any]]]] = [
        ("direct", "processes started directly", direct_round)
    ]
    unavailable = launcher_unavailable(bench)
    if unavailable:
        result.data["launcher"] = {"skipped": unavailable}
        result.notes.append(f"asyncrpc up --detach: not measured ({unavailable})")
    else:
        ways.append(("launcher", "asyncrpc up --detach", launcher_round))
    for key, how, one_round in ways:
        measured = result.data[key] = timed_rounds(bench, how, one_round)
        ready, rss = measured["ready_s_median"], measured["rss_bytes_median"]
        table.add(how, secs(ready), mib(rss), measured["rounds"][0]["processes"])
    sample = result.data["direct"]["rounds"][0]["rss_by_process_bytes"]
    result.notes.append(
        "RSS per process (first round): "
        + ", ".join(f"{name} {mib(size)}" for name, size in sample.items())
        + " MiB"
    )
    result.tables.append(table)
    return result
