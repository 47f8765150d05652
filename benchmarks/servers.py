"""The await chain at 16 callers on the two servers one can run here, interleaved.

One system on `asyncrpc server` (the shared topology) and one on resonate-pg:
the `postgres` node (`asyncrpc postgres`, Postgres 18 with resonate.sql, its
durability settings left at Postgres's defaults) with the same gateway and nine
nodes, joined through ``postgresql://``. Rounds alternate between the two (each
round starting with the other), so the machine's drift falls on both alike;
the numbers are medians over the rounds. Both systems stay up for the whole
part, so the idle one's background work (each resonate-pg process drains its
queues once a second, and one of them fires the timers four times a second) is
in both measurements. Needs ASYNCRPC_RESONATE_SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import psutil

from asyncrpc.lesson import topology
from asyncrpc.postgres import local
from benchmarks import compare, load_client
from benchmarks.bench import Bench, BenchError
from benchmarks.loads import HTTP_PRODUCT, OUR_GATEWAY, Contender, Level, gateway_call
from benchmarks.measure import CpuMeter, LoadResult, drive
from benchmarks.report import PartResult
from harness.isolation import free_port
from harness.postgres import PostgresUnavailable, resonate_sql_path
from harness.processes import ASYNCRPC, READY_TIMEOUT, Process
from harness.system import start_gateway, start_node, wait_ready
from harness.waiting import http_ok, wait_until


def family(process: Process) -> list[int]:
    """The postmaster and its backends as they are now (the pools keep their connections)."""
    try:
        parent = psutil.Process(process.pid)
        return [process.pid, *(child.pid for child in parent.children(recursive=True))]
    except psutil.NoSuchProcess:
        return [process.pid]


def start_postgres(bench: Bench, data: Path) -> tuple[Process, str]:
    """The product's `postgres` node on a free port, ready; it and its DSN."""
    try:
        schema = resonate_sql_path()
    except PostgresUnavailable as exc:
        raise BenchError(str(exc)) from None
    port = free_port()
    command = [*ASYNCRPC, "postgres", "--data", str(data), "--port", str(port)]
    process = bench.procs.start("postgres", [*command, "--schema", str(schema)])
    process.wait_for_output(local.READY_LINE, READY_TIMEOUT)
    return process, local.dsn("127.0.0.1", port)


@contextlib.asynccontextmanager
async def on_postgres(bench: Bench) -> AsyncIterator[Level]:
    base = Path(tempfile.mkdtemp(prefix="asyncrpc-bench-pg-"))
    started: list[Process] = []
    try:
        bench.say("starting Postgres (resonate.sql) + gateway + 9 nodes")
        postgres, dsn = start_postgres(bench, base / "data")
        started.append(postgres)
        gateway, url = start_gateway(bench.procs, dsn)
        started.append(gateway)
        nodes = [start_node(bench.procs, name, dsn) for name in topology.NODES]
        started += nodes
        wait_ready(gateway, *nodes)
        wait_until(lambda: http_ok(f"{url}/healthz"), READY_TIMEOUT, "the gateway's /healthz")

        async def level(ids: list[str], warmup: list[str], callers: int) -> LoadResult:
            async with load_client.session(url, callers, 120.0) as client:
                call = gateway_call(client)
                await drive(call, warmup, callers)
                roles = {
                    "server": family(postgres),
                    "gateway": [gateway.pid],
                    "nodes": [node.pid for node in nodes],
                    "driver": [os.getpid()],
                }
                return await drive(call, ids, callers, CpuMeter(roles))

        yield level
    finally:
        for process in reversed(started):
            process.stop()
        shutil.rmtree(base, ignore_errors=True)


ON_POSTGRES = Contender(
    "postgres",
    "resonate-pg (Postgres 18)",
    "Await chain through our gateway on resonate-pg",
    HTTP_PRODUCT,
    on_postgres,
)
CONTENDERS = (OUR_GATEWAY, ON_POSTGRES)


def run(bench: Bench) -> PartResult:
    callers = min(bench.sizes.callers, key=lambda c: abs(c - compare.REFERENCE_CALLERS))
    rounds = bench.sizes.compare_rounds
    entries = tuple(compare.Entry(c.name, c, None) for c in CONTENDERS)
    measured = asyncio.run(compare.interleave(bench, callers, entries))
    results = {c.name: compare.median_level(c, measured[c.name]) for c in CONTENDERS}
    labels = {OUR_GATEWAY.name: "asyncrpc server (SQLite)", ON_POSTGRES.name: ON_POSTGRES.label}
    table = compare.medians_table(
        f"Await chain on each server: {callers} callers, {rounds} round(s) interleaved, medians",
        "server",
        results,
        labels,
        by_role=True,
    )
    data = {"callers": callers, "rounds": rounds, "servers": results}
    return PartResult(
        "servers",
        data=data,
        tables=[table],
        notes=[
            "same gateway and nodes, each system joined to its own server; product CPU: server "
            "(asyncrpc server, or the postmaster and its backends) + gateway + nodes",
        ],
    )
