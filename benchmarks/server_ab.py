"""Two whole await-chain topologies up at once, their servers from two checkouts; flows alternate.

    python -m benchmarks.server_ab OTHER_CHECKOUT [--flows N]

Run it from a directory that is neither checkout (say ``/tmp``, with ``PYTHONPATH`` naming
this one): ``python -m asyncrpc`` puts its working directory first on ``sys.path``.
Each side is a server on a SQLite file, the gateway and nodes a, b, c, all started
with ``PYTHONPATH`` naming their checkout; one caller sends sequential
``POST /await-chain`` requests to the two gateways in turn (each pair starting
with the other side), so both sides meet the same machine in the same seconds.
It prints each side's p50, the median over rounds of 40 flows of one side's p50
against the other's, and each process's CPU per flow (user + system, psutil) and
context switches per flow (voluntary + involuntary: each one a wake-up or a lost core).
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
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from harness.isolation import isolated_env
from harness.processes import session
from harness.system import System, start_system

WARMUP = 20
ROUND = 40


@dataclass(frozen=True)
class Usage:
    """A process's CPU milliseconds and context switches, in total or per flow."""

    cpu_ms: float
    switches: float

    def minus(self, earlier: Usage, flows: int) -> Usage:
        return Usage(
            (self.cpu_ms - earlier.cpu_ms) / flows, (self.switches - earlier.switches) / flows
        )


def usage(side: dict[str, psutil.Process]) -> dict[str, Usage]:
    """Each process's usage so far (user + system CPU of every thread)."""
    taken = {}
    for member, process in side.items():
        times = process.cpu_times()
        switches = process.num_ctx_switches()
        taken[member] = Usage(
            (times.user + times.system) * 1e3, switches.voluntary + switches.involuntary
        )
    return taken


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
        members = {
            name: {
                "server": psutil.Process(s.server.process.pid),
                **({"gateway": psutil.Process(s.gateway.pid)} if s.gateway else {}),
                **{node: psutil.Process(p.pid) for node, p in s.nodes.items()},
            }
            for name, s in systems.items()
        }
        latencies: dict[str, list[float]] = {name: [] for name in sides}
        order = list(sides)
        before: dict[str, dict[str, Usage]] = {}
        for i in range(WARMUP + flows):
            if i == WARMUP:
                before = {name: usage(side) for name, side in members.items()}
            for name in order if i % 2 == 0 else order[::-1]:
                sent = time.perf_counter()
                answer = clients[name].post("/await-chain", params={"id": f"ab-{name}-{i}"})
                took = time.perf_counter() - sent
                if answer.status_code != 200:
                    raise SystemExit(f"{name}: HTTP {answer.status_code}: {answer.text[:200]}")
                if i >= WARMUP:
                    latencies[name].append(took * 1e3)
        after = {name: usage(side) for name, side in members.items()}
    first, second = order
    rounds = [
        statistics.median(latencies[second][k : k + ROUND])
        / statistics.median(latencies[first][k : k + ROUND])
        for k in range(0, flows, ROUND)
    ]
    per_flow = {
        name: {
            member: after[name][member].minus(before[name][member], flows)
            for member in members[name]
        }
        for name in sides
    }
    return {
        "p50_ms": {name: round(statistics.median(values), 3) for name, values in latencies.items()},
        f"{second}_over_{first}_round_p50s": round(statistics.median(rounds), 3),
        "rounds": [round(ratio, 3) for ratio in rounds],
        "cpu_ms_per_flow": {
            name: {member: round(u.cpu_ms, 3) for member, u in side.items()}
            | {"all": round(sum(u.cpu_ms for u in side.values()), 3)}
            for name, side in per_flow.items()
        },
        "switches_per_flow": {
            name: {member: round(u.switches, 2) for member, u in side.items()}
            | {"all": round(sum(u.switches for u in side.values()), 2)}
            for name, side in per_flow.items()
        },
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
