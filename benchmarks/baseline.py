"""Part 4: the same await-chain load against the Flask-style baseline gateway.

:mod:`benchmarks.baseline_gateway` runs as its own process against the shared
topology's server and nodes (our gateway stays up, idle), and gets exactly
the load :mod:`benchmarks.throughput` gives ours. It is ready once it answers
HTTP and its poll stream is connected to the server.
"""

from __future__ import annotations

import signal

from asyncrpc import topology
from benchmarks.bench import Bench
from benchmarks.processes import (
    READY_TIMEOUT,
    Topology,
    alive_or_fail,
    http_status,
    start_module,
    stream_connected,
    wait_for,
)
from benchmarks.report import (
    CPU_NOTE,
    HTTP_PRODUCT,
    PartResult,
    add_level,
    error_notes,
    level_table,
    levels_json,
)
from benchmarks.throughput import http_levels
from tests.support import Process, free_port


def start_baseline(bench: Bench, system: Topology) -> tuple[Process, str]:
    """The baseline gateway against ``system``'s server, started and ready; it and its URL."""
    port, pid = free_port(), f"baseline-{bench.tag}"
    baseline = start_module(
        bench.procs,
        "baseline-gateway",
        "baseline_gateway",
        *("--port", str(port), "--server-url", system.server_url, "--id", pid),
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        alive_or_fail(baseline)
        return http_status(f"{url}/") is not None and stream_connected(
            system.server_url, topology.GATEWAY_GROUP, pid
        )

    wait_for(ready, READY_TIMEOUT, "the baseline gateway to listen and connect")
    return baseline, url


def run(bench: Bench) -> PartResult:
    system = bench.topology()
    baseline, url = start_baseline(bench, system)
    try:
        levels = http_levels(bench, url, "baseline", system.meter(gateway=baseline))
    finally:
        baseline.kill(signal.SIGTERM)
    result = PartResult("baseline", data={"levels": levels_json(levels, HTTP_PRODUCT)})
    table = level_table("Await chain through the Flask-style baseline gateway")
    for level in levels:
        add_level(table, level)
    result.tables.append(table)
    result.notes.extend([*error_notes(levels), CPU_NOTE])
    result.notes.append(
        "baseline: Flask dev server (threaded), asyncio loop in a thread, blocking handlers "
        "(benchmarks/baseline_gateway.py), same server and nodes as ours"
    )
    return result
