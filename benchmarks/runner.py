"""Run the chosen parts in a sensible order, print each table, write the JSON, stop everything.

Parts that share the running topology run first (round trip while its
history is still small, then the loads), then the shared topology is stopped
so the parts that start their own processes have the cores to themselves. A
part that fails is reported (its trace goes to the log directory) and the
others still run. Ctrl-C or SIGTERM stop every process started, and what was
measured so far is still written.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console

from asyncrpc.runtime.signals import sigterm_as_interrupt
from benchmarks import (
    compare,
    history,
    hops,
    loads,
    pg_history,
    recovery,
    roundtrip,
    server,
    servers,
    soak,
    startup,
)
from benchmarks.bench import ROOT, Bench, Sizes
from benchmarks.report import PartResult, render, write_json
from harness.processes import session

DEFAULT_JSON = ROOT / "benchmarks" / "results" / "latest.json"


@dataclass(frozen=True)
class Part:
    name: str
    run: Callable[[Bench], PartResult]
    summary: str
    #: Uses the shared topology (runs before it is stopped).
    shared: bool


#: Every part, in the order they run.
PARTS: tuple[Part, ...] = (
    Part("roundtrip", roundtrip.run, "each flow through the gateway, sequential: p50/p99", True),
    Part("direct", loads.DIRECT.run, "await chain from an SDK client, no gateway", True),
    Part("throughput", loads.OUR_GATEWAY.run, "await chain through our gateway", True),
    Part("baseline", loads.BASELINE.run, "await chain through the Flask-style baseline", True),
    Part("original", loads.ORIGINAL.run, "await chain through the original topology", True),
    Part(
        "compare",
        compare.run,
        "ours, the original topology, an SDK client and the floor interleaved: ratios, latency",
        True,
    ),
    Part(
        "servers",
        servers.run,
        "await chain at 16 callers on asyncrpc server and on resonate-pg, interleaved",
        True,
    ),
    Part(
        "pg",
        pg_history.run,
        "resonate-pg fresh, with 30k stored promises and with b=2, beside asyncrpc server: "
        "await chain at 16 callers interleaved, CPU with no traffic",
        True,
    ),
    Part("hops", hops.run, "one sequential await chain, traced: where its time goes", False),
    Part("floor", loads.FLOOR.run, "await chain, whole topology in one process", False),
    Part("recovery", recovery.run, "replacement start to flow completion after kills", False),
    Part("startup", startup.run, "whole topology start-up time and memory (RSS)", False),
    Part(
        "server", server.run, "server alone: requests/s, restart time with stored promises", False
    ),
    Part("soak", soak.run, "flows for minutes with a short --retain: memory and disk", False),
    Part(
        "history",
        history.run,
        "100k and 1M settled promises stored against a fresh server: start, restart, RSS, reads",
        False,
    ),
)
PART_NAMES = tuple(part.name for part in PARTS)


@dataclass(frozen=True)
class Options:
    sizes: Sizes
    parts: tuple[str, ...] = PART_NAMES
    json_path: Path = DEFAULT_JSON
    keep_logs: bool = False
    quick: bool = False


def meta(options: Options, log_dir: Path) -> dict[str, Any]:
    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": options.quick,
        "parts": list(options.parts),
        "sizes": asdict(options.sizes),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "resonate_sdk": version("resonate-sdk"),
        "commit": commit or None,
        "log_dir": str(log_dir),
    }


def run(options: Options, console: Console) -> int:
    """Run the parts; 0 when every part ran, 1 when one failed, 130 when interrupted."""
    log_dir = Path(tempfile.mkdtemp(prefix="asyncrpc-bench-"))
    info = meta(options, log_dir)
    results: dict[str, PartResult] = {}
    status = 0
    chosen = [part for part in PARTS if part.name in options.parts]
    console.print(
        f"[bold]asyncrpc benchmarks[/bold]: {', '.join(p.name for p in chosen)} "
        f"({'quick' if options.quick else 'full'}); process logs in {log_dir}",
        highlight=False,
    )
    try:
        with sigterm_as_interrupt(), session(log_dir) as procs:
            bench = Bench(options.sizes, procs, log_dir, console)
            for part in chosen:
                if not part.shared:
                    bench.stop_topology()
                results[part.name] = run_part(bench, part, log_dir)
                render(console, results[part.name])
                if results[part.name].error:
                    status = 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: every process started was stopped[/yellow]")
        status = 130
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    try:
        write_json(options.json_path, info, list(results.values()))
        console.print(f"results written to {options.json_path}", highlight=False)
    except OSError as exc:
        console.print(f"[red]could not write {options.json_path}:[/red] {exc}", highlight=False)
        status = status or 1
    if status == 0 and not options.keep_logs:
        shutil.rmtree(log_dir, ignore_errors=True)
    else:
        console.print(f"process logs kept in {log_dir}", highlight=False)
    return status


def run_part(bench: Bench, part: Part, log_dir: Path) -> PartResult:
    """Run one part; an error becomes the result's ``error`` (trace saved in ``log_dir``)."""
    bench.say(f"[{part.name}] {part.summary}")
    began = time.monotonic()
    try:
        result = part.run(bench)
    except Exception as exc:
        trace = log_dir / f"{part.name}-error.txt"
        trace.write_text(traceback.format_exc())
        result = PartResult(part.name, error=f"{type(exc).__name__}: {exc} (trace: {trace})")
    result.seconds = time.monotonic() - began
    result.data["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    return result
