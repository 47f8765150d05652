"""Where the time goes under load: CPU per process, and py-spy profiles of the busiest ones.

    uv run python -m benchmarks.cpu_profile [--seconds 15] [--callers 16] [--via gateway|direct]

Starts the await chain's topology (server, gateway, nodes a b c), drives the
await chain with ``--callers`` concurrent callers through the gateway (or
from an SDK client in this process, ``--via direct``) for ``--seconds``,
and meanwhile

- reads each process's CPU time from /proc (user + system), so the table
  shows which process is busy and how close the two cores are to full;
- when ``py-spy`` is on PATH (it is not a project dependency: ``pip install
  py-spy``), records the server, the gateway and node a, and prints each
  one's functions with the most samples (self time, idle excluded), plus
  the raw collapsed stacks in the log directory for a flame graph.

py-spy counts a thread that is runnable but waiting for a core as active,
so on a loaded machine "waiting in epoll / runnable" is partly time spent
waiting for a CPU; the CPU table (from the kernel) is the reliable one.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from benchmarks import load_client, loads
from benchmarks.bench import AWAIT_CHAIN
from benchmarks.measure import CpuMeter, LoadResult, drive
from benchmarks.report import PartResult, Table, render
from harness.processes import session
from harness.system import System, start_system

#: Where a sampled frame's code lives -> what it is, first match wins.
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("asyncrpc/server/store.py", "SQLite log (store)"),
    ("sqlite3", "SQLite log (store)"),
    ("asyncrpc/server", "server engine (state machine, routing)"),
    ("resonate/connections/local.py", "server engine (state machine, routing)"),
    ("asyncrpc/", "asyncrpc (gateway, nodes)"),
    ("uvicorn/", "HTTP server (uvicorn)"),
    ("httptools", "HTTP server (uvicorn)"),
    ("starlette/", "FastAPI / Starlette / pydantic"),
    ("fastapi/", "FastAPI / Starlette / pydantic"),
    ("pydantic", "FastAPI / Starlette / pydantic"),
    ("aiohttp/", "HTTP client and SSE (aiohttp)"),
    ("resonate/", "resonate SDK"),
    ("resonate_base/", "resonate SDK"),
    ("msgspec", "JSON"),
    ("json/", "JSON"),
    ("logging/", "logging"),
    ("selectors.py", "event loop: waiting in epoll / runnable"),
    ("asyncio/runners.py", "event loop (uvloop, C)"),
    ("asyncio/", "event loop: asyncio (incl. socket send/recv)"),
)


def category(frame: str) -> str:
    for needle, name in CATEGORIES:
        if needle in frame:
            return name
    return "other (stdlib, uuid, ...)"


def self_samples(raw: Path) -> Counter[str]:
    """Samples per leaf frame in a py-spy ``raw`` (collapsed stacks) file."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[stack.split(";")[-1]] += int(count)
    return counts


def shares(counts: Counter[str], limit: int) -> list[tuple[str, float]]:
    total = sum(counts.values()) or 1
    return [(name, n / total) for name, n in counts.most_common(limit)]


def ids_for(seconds: float) -> Iterator[str]:
    """Invocation ids for ``seconds``, counted from the first one taken."""
    deadline = time.monotonic() + seconds
    for n in itertools.count():
        if time.monotonic() >= deadline:
            return
        yield f"profile-{n}"


async def load(via: str, system: System, callers: int, seconds: float, cpu: CpuMeter) -> LoadResult:
    """Drive the await chain for ``seconds``; what was measured meanwhile."""
    if via == "direct":
        client = await loads.connect_client(system.server_url)
        try:
            return await drive(loads.client_call(client), ids_for(seconds), callers, cpu)
        finally:
            await client.stop()
    async with load_client.session(system.gateway_url, callers, 60.0) as http:
        return await drive(loads.gateway_call(http), ids_for(seconds), callers, cpu)


cli = typer.Typer(add_completion=False)


@cli.command()
def main(
    seconds: Annotated[float, typer.Option(min=1, help="How long to load and record.")] = 15,
    callers: Annotated[int, typer.Option(min=1, help="Concurrent callers.")] = 16,
    via: Annotated[str, typer.Option(help="gateway (HTTP) or direct (SDK client).")] = "gateway",
) -> None:
    """Profile the topology under the await-chain load."""
    if via not in ("gateway", "direct"):
        raise typer.BadParameter("expected gateway or direct", param_hint="--via")
    console = Console(width=120)
    log_dir = Path(tempfile.mkdtemp(prefix="asyncrpc-profile-"))
    py_spy = shutil.which("py-spy")
    with session(log_dir) as procs:
        system = start_system(procs, log_dir / "profile.db", nodes=AWAIT_CHAIN.nodes)
        watched = {p.name: [p.pid] for p in system.processes()} | {"load driver": [os.getpid()]}
        recorders = []
        for name in ("server", "gateway", "node-a") if py_spy else ():
            out = log_dir / f"{name}.raw.txt"
            command = [py_spy, "record", "-p", str(watched[name][0]), "-d", str(int(seconds))]
            command += ["-r", "200", "--format", "raw", "-o", str(out), "--nonblocking"]
            popen = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            recorders.append((name, out, popen))
        measured = asyncio.run(load(via, system, callers, seconds, CpuMeter(watched)))
        for _, _, recorder in recorders:
            recorder.wait(timeout=seconds + 60)
    done, elapsed = measured.invocations - measured.errors, measured.seconds
    report = PartResult("profile")
    cpu = Table(
        f"CPU under load: await chain via {via}, {callers} callers, {elapsed:.1f}s, "
        f"{measured.per_second:.1f} inv/s",
        ["process", "CPU s", "share of one core", "ms CPU per invocation"],
    )
    used = measured.cpu_s
    for name, value in sorted(used.items(), key=lambda item: -item[1]):
        cpu.add(
            name, f"{value:.2f}", f"{value / elapsed:.0%}", f"{1000 * value / max(done, 1):.2f}"
        )
    cpu.add("total", f"{sum(used.values()):.2f}", f"{sum(used.values()) / elapsed:.0%}", "")
    report.tables.append(cpu)
    for name, out, _ in recorders:
        if out.exists():
            report.tables.extend(profile_tables(name, out))
    if not py_spy:
        report.notes.append("py-spy is not on PATH: only CPU per process (pip install py-spy)")
    report.notes.append(f"logs and raw py-spy stacks: {log_dir}")
    render(console, report)


def profile_tables(name: str, raw: Path) -> list[Table]:
    """Self time by kind of code, and the top frames, of one py-spy recording."""
    counts = self_samples(raw)
    by_category: Counter[str] = Counter()
    for frame, n in counts.items():
        by_category[category(frame)] += n
    kinds = Table(f"py-spy: {name}, self time by kind", ["kind", "share of samples"])
    for kind, share in shares(by_category, 20):
        kinds.add(kind, f"{share:.1%}")
    frames = Table(f"py-spy: {name}, top frames (self time)", ["frame", "share of samples"])
    for frame, share in shares(counts, 12):
        frames.add(frame, f"{share:.1%}")
    return [kinds, frames]


if __name__ == "__main__":
    cli()
