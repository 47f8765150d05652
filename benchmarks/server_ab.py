"""Two whole await-chain topologies up at once, their servers from two checkouts; flows alternate.

    python -m benchmarks.server_ab OTHER_CHECKOUT [--flows N]

Run it from a directory that is neither checkout (say ``/tmp``, with ``PYTHONPATH`` naming
this one): ``python -m asyncrpc`` puts its working directory first on ``sys.path``.
Each side is a server on a SQLite file, the gateway and nodes a, b, c, all started
with ``PYTHONPATH`` naming their checkout; one caller sends sequential
``POST /await-chain`` requests to the two gateways in turn (each pair starting
with the other side), so both sides meet the same machine in the same seconds.
It prints each side's p50, the median over rounds of 40 flows of one side's p50
against the other's, and each server's CPU per flow (user + system, psutil).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from harness.isolation import isolated_env
from harness.processes import session
from harness.system import System, start_system

WARMUP = 20
ROUND = 40


def run(sides: dict[str, Path], flows: int) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="server-ab-"))
    with contextlib.ExitStack() as stack:
        systems: dict[str, System] = {}
        for name, root in sides.items():
            env = isolated_env(tmp / name / "run", PYTHONPATH=str(root))
            procs = stack.enter_context(session(tmp / name / "logs", base_env=env))
            db = tmp / name / "server.db"
            systems[name] = start_system(procs, db=db, nodes=("a", "b", "c"))
        clients = {
            name: stack.enter_context(httpx.Client(base_url=system.gateway_url, timeout=30))
            for name, system in systems.items()
        }
        servers = {name: psutil.Process(s.server.process.pid) for name, s in systems.items()}
        latencies: dict[str, list[float]] = {name: [] for name in sides}
        order = list(sides)
        cpu_before = {}
        for i in range(WARMUP + flows):
            if i == WARMUP:
                cpu_before = {name: server.cpu_times() for name, server in servers.items()}
            for name in order if i % 2 == 0 else order[::-1]:
                sent = time.perf_counter()
                answer = clients[name].post("/await-chain", params={"id": f"ab-{name}-{i}"})
                took = time.perf_counter() - sent
                if answer.status_code != 200:
                    raise SystemExit(f"{name}: HTTP {answer.status_code}: {answer.text[:200]}")
                if i >= WARMUP:
                    latencies[name].append(took * 1e3)
        cpu_after = {name: server.cpu_times() for name, server in servers.items()}
    first, second = order
    rounds = [
        statistics.median(latencies[second][k : k + ROUND])
        / statistics.median(latencies[first][k : k + ROUND])
        for k in range(0, flows, ROUND)
    ]
    cpu = {
        name: (
            cpu_after[name].user
            + cpu_after[name].system
            - cpu_before[name].user
            - cpu_before[name].system
        )
        * 1e3
        / flows
        for name in sides
    }
    return {
        "p50_ms": {name: round(statistics.median(values), 3) for name, values in latencies.items()},
        f"{second}_over_{first}_round_p50s": round(statistics.median(rounds), 3),
        "rounds": [round(ratio, 3) for ratio in rounds],
        "server_cpu_ms_per_flow": {name: round(ms, 3) for name, ms in cpu.items()},
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout (its server is 'other')")
    parser.add_argument("--flows", type=int, default=400)
    args = parser.parse_args(argv)
    here = Path(__file__).resolve().parent.parent
    if Path.cwd().resolve() in (here, args.other.resolve()):
        print("run it from another directory (see the module's docstring)", file=sys.stderr)
        return 2
    result = run({"other": args.other.resolve(), "here": here}, args.flows)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
