"""Part 8: start-up time of the whole topology, and its memory.

Directly: the server is started, and once it answers ``/healthz`` the gateway
and the nine nodes are started at once (each a ``python -m asyncrpc``
process, as ``asyncrpc up`` runs them); ready means every node printed its
ready line and the gateway's ``/healthz`` answered 200. Memory is RSS (VmRSS
from /proc) summed over the eleven processes, once ready and idle.

Then the same through the launcher, when ``asyncrpc up --detach`` is
available: the command's wall time until it returns (it returns once
everything is ready), and RSS summed over the launcher and everything below
it; ``asyncrpc down`` stops it (and anything it leaves, by the pids its state
file lists).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asyncrpc import config
from benchmarks.bench import Bench
from benchmarks.processes import (
    READY_TIMEOUT,
    BenchError,
    descendants,
    rss_bytes,
    start_topology,
    total_rss_bytes,
)
from benchmarks.report import PartResult, Table, mib, secs
from tests.support import ASYNCRPC, free_port


def direct_round(bench: Bench, i: int) -> dict[str, Any]:
    first = len(bench.procs.started)
    try:
        system = start_topology(bench.procs, bench.log_dir / f"startup-{i}.db")
        time.sleep(1.0)  # let start-up garbage settle before reading memory
        per_process = {p.name: rss_bytes(p.pid) for p in system.processes()}
        return {
            "ready_s": round(system.ready_after, 3),
            "rss_bytes": total_rss_bytes(p.pid for p in system.processes()),
            "rss_by_process_bytes": per_process,
        }
    finally:
        for process in reversed(bench.procs.started[first:]):
            process.kill(signal.SIGTERM)


def launcher_available(env: dict[str, str]) -> str | None:
    """None when `asyncrpc up --detach` can be used, else why not."""
    try:
        shown = subprocess.run(
            [*ASYNCRPC, "up", "--help"], capture_output=True, text=True, env=env, timeout=60
        )
    except subprocess.TimeoutExpired:
        return "`asyncrpc up --help` did not answer within 60 s"
    if shown.returncode != 0 or "--detach" not in shown.stdout:
        return "`asyncrpc up --detach` is not available"
    return None


def pids_in(state: Any) -> set[int]:
    """Every integer under a "pid" key of the launcher's state file."""
    found: set[int] = set()
    if isinstance(state, dict):
        for key, value in state.items():
            if key == "pid" and isinstance(value, int):
                found.add(value)
            else:
                found |= pids_in(value)
    elif isinstance(state, list):
        for item in state:
            found |= pids_in(item)
    return found


def launcher_round(bench: Bench, i: int) -> dict[str, Any]:
    run_dir = bench.log_dir / f"launcher-{i}"
    env = {**bench.procs.base_env, config.ENV_RUN_DIR: str(run_dir)}
    ports = ["--server-port", str(free_port()), "--gateway-port", str(free_port())]
    state_file = run_dir / "launcher.json"
    started: set[int] = set()
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
        started = launcher_pids(state_file)
        if up.returncode != 0:
            raise BenchError(f"asyncrpc up --detach exited {up.returncode}: {up.stderr[-500:]}")
        time.sleep(1.0)  # as for the direct start: let start-up garbage settle
        return {
            "ready_s": round(elapsed, 3),
            "rss_bytes": total_rss_bytes(started),
            "processes": len(descendants(started)),
        }
    finally:
        started |= launcher_pids(state_file)
        subprocess.run(
            [*ASYNCRPC, "down", "--run-dir", str(run_dir)],
            capture_output=True,
            env=env,
            timeout=120,
        )
        stop_leftovers(started, run_dir)


def launcher_pids(state_file: Path) -> set[int]:
    try:
        return pids_in(json.loads(state_file.read_text()))
    except (OSError, ValueError):
        return set()


def stop_leftovers(pids: set[int], run_dir: Path) -> None:
    """SIGKILL what the launcher's state listed, `down` did not stop, and runs for ``run_dir``."""
    marker = f"{config.ENV_RUN_DIR}={run_dir}".encode()
    for pid in pids:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue  # gone
        if marker in environ.split(b"\0"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds, with the median time to ready and the median RSS."""
    return {
        "rounds": rounds,
        "ready_s_median": statistics.median(r["ready_s"] for r in rounds),
        "rss_bytes_median": statistics.median(r["rss_bytes"] for r in rounds),
    }


def timed_rounds(
    bench: Bench, how: str, one_round: Callable[[Bench, int], dict[str, Any]]
) -> list[dict[str, Any]]:
    """``bench.sizes.startup_rounds`` start-ups one way, each one's measurements."""
    rounds = bench.sizes.startup_rounds
    measured = []
    for i in range(rounds):
        bench.say(f"start-up: {how}, round {i + 1}/{rounds}")
        measured.append(one_round(bench, i))
    return measured


def add_row(table: Table, how: str, summary: dict[str, Any], processes: int) -> None:
    table.add(how, secs(summary["ready_s_median"]), mib(summary["rss_bytes_median"]), processes)


def run(bench: Bench) -> PartResult:
    rounds = bench.sizes.startup_rounds
    result = PartResult("startup")
    table = Table(
        f"Start-up of server + gateway + 9 nodes (median of {rounds})",
        ["how", "to ready s", "RSS MiB (sum)", "processes"],
    )
    direct = timed_rounds(bench, "direct", direct_round)
    result.data["direct"] = medians(direct)
    add_row(
        table,
        "processes started directly",
        result.data["direct"],
        len(direct[0]["rss_by_process_bytes"]),
    )
    unavailable = launcher_available(bench.procs.base_env)
    if unavailable:
        result.data["launcher"] = {"skipped": unavailable}
        result.notes.append(f"asyncrpc up --detach: not measured ({unavailable})")
    else:
        launched = timed_rounds(bench, "asyncrpc up --detach", launcher_round)
        result.data["launcher"] = medians(launched)
        add_row(table, "asyncrpc up --detach", result.data["launcher"], launched[0]["processes"])
    sample = direct[0]["rss_by_process_bytes"]
    result.notes.append(
        "RSS per process (first round): "
        + ", ".join(f"{name} {mib(size)}" for name, size in sample.items())
        + " MiB"
    )
    result.tables.append(table)
    return result
