"""Two gateways, from two checkouts, on one topology; wrk drives each in turn: their own cost.

    cd /tmp && PYTHONPATH=$OLDPWD uv run --project $OLDPWD python -m benchmarks.gateway_ab DIR
        [--rounds 8] [--seconds 5] [--instructions]

Run it from a directory that is neither checkout: ``python -m asyncrpc`` puts its working
directory first on ``sys.path``. One server and nodes a, b, c run this checkout's code;
two gateways join them, "base" from ``DIR`` and "new" from this checkout (each started
with ``PYTHONPATH`` naming its own). Each round loads one gateway, then the other (the
order alternating), with wrk (:func:`benchmarks.wrk.load`: 16 connections, the await
chain), and reads that gateway's CPU from /proc over the load: CPU per flow, counted
over the answered invocations and those left in flight. Both gateways meet the same
server, nodes and machine in the same minute, so the median of the rounds' ratios
new / base says what the change did, on a machine whose speed moves with its load.

With ``--instructions`` both gateways run under callgrind with instrumentation off,
switched on (``callgrind_control``) only during their own loads: user-space instructions
per flow, which the load on the machine does not move (the gateways run some 30 times
slower, so a round answers a few hundred flows).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks import wrk
from benchmarks.bench import BenchError
from benchmarks.measure import CpuMeter, LoadResult
from harness.isolation import free_port, isolated_env
from harness.processes import ASYNCRPC, Process, Processes, session
from harness.system import start_system
from harness.waiting import http_ok, wait_until

SIDES = ("base", "new")
#: Seconds a gateway under callgrind may take to start (it loads FastAPI instrumented).
SLOW_START_S = 600.0
CALLERS = 16


@dataclass
class Gateway:
    """One contender: its process, URL and, under callgrind, where its counts go."""

    process: Process
    url: str
    callgrind_out: Path | None = None
    vgdb_prefix: Path | None = None

    def control(self, *args: str) -> None:
        """``callgrind_control`` for this gateway (under callgrind only)."""
        command = ["callgrind_control", f"--vgdb-prefix={self.vgdb_prefix}", *args]
        subprocess.run([*command, str(self.process.pid)], capture_output=True, check=True)

    def dumps(self) -> set[Path]:
        assert self.callgrind_out is not None
        return set(self.callgrind_out.parent.glob(f"{self.callgrind_out.name}*"))


def callgrind_total(dump: Path) -> int:
    """The instructions a callgrind dump counted (its ``totals:`` line)."""
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    return 0


def start_gateway(
    procs: Processes, name: str, root: Path, server_url: str, tmp: Path, instructions: bool
) -> Gateway:
    port = free_port()
    env = isolated_env(tmp / f"run-{name}", PYTHONPATH=str(root))
    command = [*ASYNCRPC, "node", "gateway", "--port", str(port), "--server-url", server_url]
    if not instructions:
        return Gateway(procs.start(f"gateway-{name}", command, env=env), f"http://127.0.0.1:{port}")
    out, prefix = tmp / f"callgrind-{name}.out", tmp / f"vgdb-{name}"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--vgdb-prefix={prefix}"]
    valgrind.append(f"--callgrind-out-file={out}")
    process = procs.start(f"gateway-{name}", [*valgrind, *command], env=env)
    return Gateway(process, f"http://127.0.0.1:{port}", out, prefix)


def per_flow(result: LoadResult) -> int:
    """Invocations a load made the product run: answered, and left in flight (see wrk.py)."""
    return max(result.invocations - result.errors + result.unanswered, 1)


def measure_cpu(gateway: Gateway, prefix: str, seconds: int) -> float:
    meter = CpuMeter({"gateway": [gateway.process.pid]})
    result = wrk.load(gateway.url, prefix, seconds, 10**7, CALLERS, meter)
    return 1000 * result.cpu_s["gateway"] / per_flow(result)


def measure_instructions(gateway: Gateway, prefix: str, seconds: int) -> float:
    gateway.control("--zero")
    gateway.control("--instr=on")
    # The instrumented gateway is slow: a second for the flows left in flight to finish.
    result = wrk.load(gateway.url, prefix, seconds, 10**7, CALLERS, settle=1.0)
    gateway.control("--instr=off")
    before = gateway.dumps()
    gateway.control(f"--dump={prefix}")
    counted = sum(callgrind_total(dump) for dump in gateway.dumps() - before)
    return counted / per_flow(result)


@contextlib.contextmanager
def contenders(base: Path, new: Path, instructions: bool) -> Iterator[dict[str, Gateway]]:
    """The topology, with a gateway from each checkout joined to it; all stopped after."""
    tmp = Path(tempfile.mkdtemp(prefix="gateway-ab-"))
    with session(tmp / "logs", base_env=isolated_env(tmp / "run", PYTHONPATH=str(new))) as procs:
        system = start_system(procs, db=tmp / "server.db", nodes=("a", "b", "c"), gateway=False)
        roots = dict(zip(SIDES, (base, new), strict=True))
        gateways = {
            name: start_gateway(procs, name, root, system.server_url, tmp, instructions)
            for name, root in roots.items()
        }
        timeout = SLOW_START_S if instructions else 120.0
        for name, gateway in gateways.items():
            healthy = functools.partial(http_ok, f"{gateway.url}/healthz")
            wait_until(healthy, timeout, f"the {name} gateway's /healthz")
        yield gateways


def run(base: Path, new: Path, rounds: int, seconds: int, instructions: bool) -> dict[str, object]:
    if wrk.available() is None:
        raise BenchError("wrk is not installed (apt-get install wrk)")
    if instructions and shutil.which("callgrind_control") is None:
        raise BenchError("--instructions needs valgrind (apt-get install valgrind)")
    measure: Callable[[Gateway, str, int], float] = (
        measure_instructions if instructions else measure_cpu
    )
    per: dict[str, list[float]] = {name: [] for name in SIDES}
    loads: list[float] = []
    with contenders(base, new, instructions) as gateways:
        for name, gateway in gateways.items():
            wrk.load(gateway.url, f"warm-{name}", 2, 10**7, CALLERS)
        for n in range(rounds):
            for name in SIDES if n % 2 == 0 else SIDES[::-1]:
                per[name].append(measure(gateways[name], f"r{n}-{name}", seconds))
                loads.append(os.getloadavg()[0])
    ratios = [n / b for n, b in zip(per["new"], per["base"], strict=True)]
    unit = "instructions_per_flow" if instructions else "cpu_ms_per_flow"
    return {
        unit: {name: [round(value, 4) for value in values] for name, values in per.items()},
        "median": {name: round(statistics.median(values), 4) for name, values in per.items()},
        "new_over_base": [round(ratio, 3) for ratio in ratios],
        "median_new_over_base": round(statistics.median(ratios), 3),
        "load_average": [round(min(loads), 2), round(max(loads), 2)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gateway_ab", description=__doc__)
    parser.add_argument("base", type=Path, help="the other checkout (the 'base' gateway)")
    parser.add_argument("--rounds", type=int, default=8, help="pairs of loads (default 8)")
    parser.add_argument("--seconds", type=int, default=5, help="seconds per load (default 5)")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions under callgrind"
    )
    args = parser.parse_args(argv)
    new = Path(__file__).resolve().parent.parent
    if Path.cwd().resolve() in (new, args.base.resolve()):
        parser.error("run it from a directory that is neither checkout (see the docstring)")
    if args.rounds < 1 or not 1 <= args.seconds <= wrk.MAX_SECONDS:
        parser.error(f"--rounds must be 1 or more and --seconds 1 to {wrk.MAX_SECONDS}")
    try:
        result = run(args.base.resolve(), new, args.rounds, args.seconds, args.instructions)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
