"""The ``server`` part: protocol requests per second, and restart time with stored history.

Against a real `asyncrpc server` process on loopback with a SQLite file (as
it runs by default), no SDK in between, one small JSON envelope per request
(aiohttp clients, see :mod:`benchmarks.load_client`):

- ``promise.create`` + ``promise.settle`` pairs, one client sequentially and
  16 concurrent clients (each over its own keep-alive connection);
- task round trips, 16 clients: ``promise.create`` with a target (the
  server makes a task; nobody polls that group, so its ``execute`` is
  dropped), ``task.acquire``, ``task.fulfill``: three requests each;
- restart after ``kill -9`` with N stored promises: from starting the
  process to ``GET /healthz`` answering 200, and the recovery (snapshot load
  + log replay) the server itself logs. The promises beyond those the rates
  left are written while the server is down, by its own engine in this
  process (see :func:`fill`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from asyncrpc.server.engine import Engine
from asyncrpc.server.store import Store
from benchmarks import load_client
from benchmarks.bench import Bench, BenchError
from benchmarks.load_client import envelope
from benchmarks.measure import CpuMeter, drive
from benchmarks.report import PartResult, Table, rate, secs
from harness.processes import Server

FAR = 10**15
CLIENTS = 16
#: Target address of the task round trips: a group nobody polls.
NOBODY = "poll://any@bench-nobody"


async def post(client: aiohttp.ClientSession, kind: str, **data: object) -> None:
    status, reply = await load_client.post(client, "/", body=envelope(kind, **data))
    if status >= 300:
        raise BenchError(f"{kind} -> {status}: {str(reply)[:200]}")


async def create_settle(client: aiohttp.ClientSession, promise_id: str) -> None:
    await post(client, "promise.create", id=promise_id, timeoutAt=FAR)
    await post(client, "promise.settle", id=promise_id, state="resolved")


async def task_round_trip(client: aiohttp.ClientSession, promise_id: str) -> None:
    await post(
        client, "promise.create", id=promise_id, timeoutAt=FAR, tags={"resonate:target": NOBODY}
    )
    await post(client, "task.acquire", id=promise_id, version=0, pid="bench", ttl=60_000)
    await post(
        client,
        "task.fulfill",
        id=promise_id,
        version=1,  # acquiring version 0 made it 1
        action={"kind": "promise.settle", "data": {"id": promise_id, "state": "resolved"}},
    )


def fill(db: Path, ids: list[str]) -> None:
    """Store a promise per id in the (stopped) server's database, through the server's engine.

    The same code path as ``POST /`` minus HTTP (apply, append to the log,
    snapshot when due), run in this process because filling 100,000 over
    HTTP would take minutes; it ends without a final snapshot, as a
    ``kill -9`` would.
    """
    engine = Engine(Store(str(db)))
    for promise_id in ids:
        reply = engine.handle(
            json.dumps(envelope("promise.create", id=promise_id, timeoutAt=FAR)).encode()
        )
        if reply.status >= 300:
            raise BenchError(f"storing {promise_id}: {reply.status} {reply.body[:200]!r}")
    engine.store.close()


async def requests_per_second(
    url: str,
    ids: list[str],
    clients: int,
    one: Callable[[aiohttp.ClientSession, str], Awaitable[None]],
    requests_each: int,
    meter: CpuMeter,
) -> tuple[float, dict[str, float]]:
    """Run ``one`` per id with ``clients`` concurrent clients: requests/s, CPU µs per request."""
    async with load_client.session(url, clients, 30.0) as client:
        measured = await drive(lambda promise_id: one(client, promise_id), ids, clients, meter)
    if measured.errors:
        raise BenchError(f"{measured.errors} request(s) failed, first: {measured.first_error}")
    requests = requests_each * measured.invocations
    cpu = {role: 1e6 * used / requests for role, used in measured.cpu_s.items()}
    return requests / measured.seconds, cpu


def recovery_seconds(log: str) -> float | None:
    """The recovery time the server logged last ("recovered N promises ... in Xs")."""
    found = re.findall(r"recovered \d+ promises .* in ([0-9.]+)s", log)
    return float(found[-1]) if found else None


def run(bench: Bench) -> PartResult:
    sizes = bench.sizes
    db = bench.log_dir / "server-alone.db"
    result = PartResult("server")
    rates = Table(
        "Server alone: protocol requests per second",
        ["what", "clients", "req/s", "server CPU µs/req", "client CPU µs/req"],
    )
    restarts = Table(
        "Server restart after kill -9 (SQLite file)",
        ["stored promises", "start to ready s", "recovery s (server log)"],
    )
    server: Server = bench.procs.spawn_server(db)
    try:
        server.wait()
        pairs = sizes.server_pairs
        bench.say(f"server alone: {pairs} create+settle pairs, 1 and {CLIENTS} clients")
        meter = CpuMeter({"server": [server.process.pid], "driver": [os.getpid()]})
        kinds = [
            ("create+settle", 1, "s1", create_settle, 2),
            ("create+settle", CLIENTS, "s16", create_settle, 2),
            ("task round trip (create, acquire, fulfill)", CLIENTS, "t16", task_round_trip, 3),
        ]
        result.data["requests_per_s"] = []
        for what, clients, prefix, one, each in kinds:
            ids = bench.ids(prefix, pairs)
            per_second, cpu = asyncio.run(
                requests_per_second(server.url, ids, clients, one, each, meter)
            )
            result.data["requests_per_s"].append(
                {
                    "what": what,
                    "clients": clients,
                    "requests_per_s": round(per_second, 1),
                    "cpu_us_per_request": {role: round(v) for role, v in cpu.items()},
                }
            )
            rates.add(
                what,
                clients,
                rate(per_second),
                f"{cpu['server']:.0f}",
                f"{cpu['driver']:.0f}",
            )
        stored = 3 * pairs
        result.data["restart"] = []
        for target in sorted(sizes.server_promises):
            server.process.kill(signal.SIGKILL)
            if target > stored:
                bench.say(f"server alone: storing {target - stored} more promises")
                fill(db, bench.ids(f"fill{target}", target - stored))
                stored = target
            server = bench.procs.spawn_server(db, server.port)
            ready_after = server.wait()
            recovered = recovery_seconds(server.process.output())
            result.data["restart"].append(
                {
                    "stored_promises": stored,
                    "start_to_ready_s": round(ready_after, 3),
                    "recovery_s": recovered,
                }
            )
            restarts.add(f"{stored:,}", secs(ready_after), secs(recovered))
    finally:
        server.process.stop()
    result.tables.extend([rates, restarts])
    result.notes.append(
        "CPU µs per request: user+system CPU (from /proc) of the server process and of this "
        "benchmark process (the aiohttp clients) over the requests made; when the two add up to "
        "about 2 cores' worth, the clients are part of the bound"
    )
    result.notes.append(
        "start to ready: from starting the process to GET /healthz = 200 (polled every 10 ms), "
        "Python start-up and imports included"
    )
    return result
