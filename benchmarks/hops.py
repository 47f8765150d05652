"""The ``hops`` part: where the milliseconds of one sequential await chain go, hop by hop.

The await chain's processes (server, gateway, nodes a, b, c) run under
:mod:`benchmarks.traced`, which stamps every protocol request as it leaves a
process and returns, every request as the server takes and answers it, every
SQLite commit, and every pushed message as the server writes it and as a
process receives it. This process stamps each ``POST /await-chain`` and its
answer, one invocation at a time. All stamps are on the machine's one wall
clock, so they sort into one timeline per invocation; each interval between
two consecutive stamps goes to the hop it spans:

- the gateway: from the caller's POST to its first protocol request, and
  from the pushed ``unblock`` to the caller's answer (uvicorn, the route, the
  SDK's ``rpc`` and its handle, the HTTP write);
- a request's way to the server (the client's encoding and write, loopback,
  uvicorn's parse) and its answer's way back;
- the server's own work on a request (parse, state machine, routing), and
  its SQLite commit apart;
- a push (the server's SSE write to the process's SDK callback) and the
  node's pick-up (from the message to its first request);
- each node's own work between two of its requests (the SDK, the function,
  its log lines).

An interval in which two processes work at once (the gateway registering its
listener while node a picks up its task) is counted once, under the pair of
stamps that bound it, so the hops add up to the invocation's wall time. A
stamp costs a few microseconds (a line written to a file), which this part's
total includes and the ``roundtrip`` part's does not.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from asyncrpc.lesson import topology
from benchmarks import load_client, traced
from benchmarks.bench import AWAIT_CHAIN, ROOT, Bench, BenchError
from benchmarks.report import PartResult, Table
from harness.isolation import free_port
from harness.processes import READY_TIMEOUT, Process
from harness.system import printed_ready
from harness.waiting import http_ok, wait_until

WARMUP = 10


@dataclass(frozen=True, order=True)
class Stamp:
    ns: int
    process: str
    event: str
    what: str


def read_stamps(path: Path, process: str) -> list[Stamp]:
    stamps = []
    for line in path.read_text().splitlines():
        ns, event, what = line.split(" ", 2)
        stamps.append(Stamp(int(ns), process, event, what))
    return stamps


SERVER = "server"
CLIENT = "caller"
GATEWAY = topology.GATEWAY


def hop(before: Stamp, after: Stamp) -> str:
    """The hop that the interval between two consecutive stamps of one invocation belongs to."""
    pair = (before.event, after.event)
    if before.process == CLIENT and after.process == GATEWAY:
        return "gateway: HTTP request in to its first protocol request"
    if before.process == GATEWAY and before.event == "msg" and after.process == CLIENT:
        return "gateway: pushed unblock to the HTTP answer out"
    if after.process == SERVER and after.event == "in":
        return "request to the server (client write, loopback, uvicorn)"
    if before.process == SERVER and after.process == SERVER:
        if pair == ("commit", "committed"):
            return "server: SQLite commit"
        return "server: parse, state machine, routing, answer"
    if before.event == "out" and after.event == "answer":
        return "answer back to the client (uvicorn write, loopback, client)"
    if before.event == "push" and after.event == "msg":
        return "push: the server's SSE write to the SDK's callback"
    if before.process == after.process and pair == ("msg", "send"):
        return f"node pick-up: message to first request ({before.process})"
    if before.process == after.process and pair == ("answer", "send"):
        who = "gateway" if before.process == GATEWAY else f"node {before.process}"
        return f"{who}: own work between its requests"
    return "overlapping work of two processes"


def invocations(stamps: list[Stamp]) -> list[list[Stamp]]:
    """The stamps of each invocation: from the caller's POST to its answer."""
    found: list[list[Stamp]] = []
    current: list[Stamp] | None = None
    for stamp in sorted(stamps):
        if stamp.process == CLIENT and stamp.event == "post":
            current = [stamp]
        elif current is not None:
            current.append(stamp)
            if stamp.process == CLIENT and stamp.event == "answer":
                found.append(current)
                current = None
    return found


def profile(chains: list[list[Stamp]]) -> dict[str, Any]:
    """Per hop: mean milliseconds per invocation, occurrences per invocation, share of the total."""
    per_hop: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    totals = []
    requests = []
    for chain in chains:
        totals.append((chain[-1].ns - chain[0].ns) / 1e6)
        requests.append(sum(1 for s in chain if s.process == SERVER and s.event == "in"))
        for before, after in itertools.pairwise(chain):
            name = hop(before, after)
            per_hop[name] += (after.ns - before.ns) / 1e6
            counts[name] += 1
    n = max(len(chains), 1)
    total = sum(per_hop.values()) or 1.0
    hops = {
        name: {
            "ms_per_invocation": round(ms / n, 3),
            "times_per_invocation": round(counts[name] / n, 2),
            "share": round(ms / total, 3),
        }
        for name, ms in sorted(per_hop.items(), key=lambda item: -item[1])
    }
    return {
        "invocations": len(chains),
        "p50_ms": round(statistics.median(totals), 3) if totals else None,
        "mean_ms": round(statistics.fmean(totals), 3) if totals else None,
        "server_requests_per_invocation": statistics.median(requests) if requests else None,
        "hops": hops,
    }


class Caller:
    """This process's stamps: each POST and its answer."""

    def __init__(self) -> None:
        self.stamps: list[Stamp] = []

    def mark(self, event: str) -> None:
        self.stamps.append(Stamp(time.time_ns(), CLIENT, event, "-"))


async def drive_sequential(url: str, ids: list[str], caller: Caller) -> None:
    async with load_client.session(url, 1, 60.0) as client:
        for n, invocation_id in enumerate(ids):
            if n >= WARMUP:
                caller.mark("post")
            status, body = await load_client.post(
                client, AWAIT_CHAIN.route, params={"id": invocation_id}
            )
            if n >= WARMUP:
                caller.mark("answer")
            if status != 200 or body != {"message": AWAIT_CHAIN.expected_result}:
                raise BenchError(f"HTTP {status}: {str(body)[:200]}")


def start_traced(bench: Bench, name: str, trace: Path, *args: str) -> Process:
    """``python -m benchmarks.traced TRACE ARGS``; the server profiles itself when asked to
    (:data:`~benchmarks.traced.PROFILE_ENV` set in this process's environment)."""
    env = {"PYTHONPATH": str(ROOT)}
    if name == SERVER and os.environ.get(traced.PROFILE_ENV):
        env[traced.PROFILE_ENV] = os.environ[traced.PROFILE_ENV]
    command = [sys.executable, "-m", "benchmarks.traced", str(trace), *args]
    return bench.procs.start(f"traced-{name}", command, env=env)


def run(bench: Bench) -> PartResult:
    traces = bench.log_dir / "hops"
    traces.mkdir(exist_ok=True)
    files = {name: traces / f"{name}.trace" for name in (SERVER, GATEWAY, *AWAIT_CHAIN.nodes)}
    caller = Caller()
    with bench.procs.scope():
        port = free_port()
        server_url = f"http://127.0.0.1:{port}"
        server = start_traced(bench, SERVER, files[SERVER], "server", str(port), ":memory:")
        wait_until(lambda: http_ok(f"{server_url}/healthz"), READY_TIMEOUT, "the traced server")
        gateway_port = free_port()
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        gateway = start_traced(
            bench,
            GATEWAY,
            files[GATEWAY],
            "gateway",
            str(gateway_port),
            server_url,
            f"gateway-{bench.tag}",
        )
        nodes = [
            start_traced(bench, name, files[name], "node", name, server_url, f"{name}-1")
            for name in AWAIT_CHAIN.nodes
        ]
        for process in (gateway, *nodes):
            wait_until(lambda p=process: printed_ready(p), READY_TIMEOUT, f"{process.name} ready")
        wait_until(lambda: http_ok(f"{gateway_url}/healthz"), READY_TIMEOUT, "the gateway")
        count = bench.sizes.roundtrip
        bench.say(f"hops: await chain x {count}, sequential, traced")
        ids = bench.ids("hops", WARMUP + count)
        server_cpu = psutil.Process(server.pid)
        before = server_cpu.cpu_times()
        asyncio.run(drive_sequential(gateway_url, ids, caller))
        after = server_cpu.cpu_times()
        del server
    # The server's CPU over every invocation driven, the warm-up's included.
    server_cpu_ms = (after.user + after.system - before.user - before.system) * 1e3 / len(ids)
    stamps = list(caller.stamps)
    for name, path in files.items():
        if path.exists():
            stamps += read_stamps(path, name)
    data = profile(invocations(stamps))
    data["server_cpu_ms_per_invocation"] = round(server_cpu_ms, 3)
    table = Table(
        f"Where one sequential await chain's time goes ({data['invocations']} invocations, "
        f"traced; p50 {data['p50_ms']} ms, mean {data['mean_ms']} ms)",
        ["hop", "ms per invocation", "times per invocation", "share"],
    )
    for name, numbers in data["hops"].items():
        table.add(
            name,
            f"{numbers['ms_per_invocation']:.3f}",
            f"{numbers['times_per_invocation']:g}",
            f"{numbers['share']:.1%}",
        )
    return PartResult(
        "hops",
        data=data,
        tables=[table],
        notes=[
            "each interval between two consecutive stamps of one invocation, on the machine's "
            "wall clock, goes to the hop it spans; the hops add up to the invocation's time",
            f"server requests per invocation (median): {data['server_requests_per_invocation']}",
            f"server CPU per invocation (user + system, the tracer's stamps included): "
            f"{data['server_cpu_ms_per_invocation']} ms",
        ],
    )
