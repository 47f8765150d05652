"""The await chain under load, four ways; a part per way, at each concurrency level.

- ``throughput``: through our gateway (uvicorn; the flow routes ahead of
  FastAPI). Each caller POSTs ``/await-chain?id=<unique id>`` back to back
  over a keep-alive connection of its own and checks the answer
  ``{"message": 3}``: wrk's connections when wrk is installed
  (:mod:`benchmarks.wrk`, which leaves the cores to what it measures), else
  aiohttp's (:mod:`benchmarks.load_client`).
- ``baseline``: the same load through :mod:`benchmarks.baseline_gateway`, the
  Flask-style gateway of the original example, run as its own process against
  the same server and nodes (ours stays up, idle).
- ``original``: the original example's whole topology: its Flask gateway and
  its services a, b and c (:mod:`benchmarks.original_node`: the SDK's
  defaults) on a second `asyncrpc server` of their own.
- ``direct``: no HTTP gateway. This process joins the server the way every
  asyncrpc process does (:func:`asyncrpc.network.join.join`) and does what a gateway
  handler does at its core: ``rpc(id, "foo")`` on ``service-a``, then
  ``await handle.result()``. Against our gateway this is the gateway's cost. Where
  wrk drives the HTTP loads, this one runs for as long as they do (:func:`timed_ids`),
  so both are measured over the same time, their starts and ends as small a share.
- ``floor``: the whole topology in this process on the SDK's in-process
  server (:func:`harness.in_process.in_process`): the same durable calls with
  no sockets, no HTTP, no SQLite and one event loop. What hops and separate
  processes cost is the gap between this and the topology. Two choices keep
  the floor from sinking as history grows, which would flatter the ratio: the
  local server keeps an :class:`IndexedServerState` (the SDK's state machine
  with indexes where it otherwise scans every promise ever created), and each
  level gets a fresh instance.

Every way opens as a :data:`Level` (run one concurrency level: warm-up ids,
then measured ids), so :mod:`benchmarks.compare` can interleave them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from resonate.resonate import Resonate

from asyncrpc.lesson import topology
from asyncrpc.network.join import join
from benchmarks import load_client, wrk
from benchmarks.bench import AWAIT_CHAIN, Bench, BenchError
from benchmarks.indexed_state import IndexedServerState
from benchmarks.measure import Call, CpuMeter, LoadResult, drive
from benchmarks.report import PartResult, Table, ms, rate
from harness.in_process import in_process
from harness.isolation import free_port
from harness.processes import READY_TIMEOUT, Process
from harness.system import System, stream_connected
from harness.waiting import http_status, wait_until

#: One concurrency level: (measured ids, warm-up ids, callers) -> what was measured.
Level = Callable[[list[str], list[str], int], Awaitable[LoadResult]]
#: The roles whose CPU is the product's when the load comes through an HTTP gateway (this
#: process is then only the callers); with an SDK client or in one process, this process
#: does the product's work too.
HTTP_PRODUCT = ("server", "gateway", "nodes")
CLIENT_GROUP = "bench-client"
CALL_TIMEOUT = 120.0


# ── One call of the await chain ──────────────────────────────────────────────


def gateway_call(client: aiohttp.ClientSession) -> Call:
    """POST the await chain to the gateway ``client`` talks to; check the answer."""

    async def call(invocation_id: str) -> None:
        status, body = await load_client.post(
            client, AWAIT_CHAIN.route, params={"id": invocation_id}
        )
        if status != 200 or body != {"message": AWAIT_CHAIN.expected_result}:
            raise BenchError(f"HTTP {status}: {str(body)[:200]}")

    return call


def client_call(resonate: Resonate) -> Call:
    """``rpc`` + ``result`` of the await chain from an SDK client; check the answer."""
    client = resonate.options(target=AWAIT_CHAIN.entry_group)

    async def call(invocation_id: str) -> None:
        handle = client.rpc(invocation_id, AWAIT_CHAIN.entry_function, *AWAIT_CHAIN.entry_args)
        value = await handle.result()
        if value != AWAIT_CHAIN.expected_result:
            raise BenchError(f"wrong answer: {value!r}")

    return call


async def connect_client(server_url: str) -> Resonate:
    """An SDK client in this process, joined the way asyncrpc processes join; connected."""
    pid = f"{CLIENT_GROUP}-{secrets.token_hex(3)}"
    resonate, _ = join(server_url, group=CLIENT_GROUP, pid=pid)
    try:
        await asyncio.to_thread(
            wait_until,
            lambda: stream_connected(server_url, CLIENT_GROUP, pid),
            READY_TIMEOUT,
            f"the SDK client's poll stream to connect to {server_url}",
        )
    except BaseException:
        await resonate.stop()
        raise
    return resonate


def meter(system: System, gateway: Process | None) -> CpuMeter:
    """CPU of the server, ``gateway`` (if any), the nodes, and this process."""
    roles = {"server": [system.server.process.pid]}
    if gateway is not None:
        roles["gateway"] = [gateway.pid]
    roles["nodes"] = [p.pid for p in system.nodes.values()]
    return CpuMeter({**roles, "driver": [os.getpid()]})


async def warmed(
    call: Call, ids: list[str], warmup: list[str], callers: int, cpu: CpuMeter
) -> LoadResult:
    await drive(call, warmup, callers)
    return await drive(call, ids, callers, cpu)


# ── The four ways, each opened as a Level ────────────────────────────────────


#: A timed load's cap on its count, per id it is given: a bound on a runaway load, far above
#: what a round answers in its time on this machine (a load that reaches it is an error).
CAP_PER_ID = 500


def http_level(url: str, cpu: CpuMeter, seconds: int) -> Level:
    """POSTs of the await chain to ``url``: through wrk where installed, else aiohttp.

    wrk runs for ``seconds`` (at most :data:`CAP_PER_ID` invocations per id given), after a
    second of warm-up; aiohttp runs the ids given.
    """
    if wrk.available():

        async def with_wrk(ids: list[str], warmup: list[str], callers: int) -> LoadResult:
            await asyncio.to_thread(wrk.load, url, id_prefix(warmup), 1, 100_000, callers)
            cap = CAP_PER_ID * len(ids)
            return await asyncio.to_thread(
                wrk.load, url, id_prefix(ids), seconds, cap, callers, cpu
            )

        return with_wrk

    async def level(ids: list[str], warmup: list[str], callers: int) -> LoadResult:
        async with load_client.session(url, callers, CALL_TIMEOUT) as client:
            return await warmed(gateway_call(client), ids, warmup, callers, cpu)

    return level


def id_prefix(ids: list[str]) -> str:
    """What ``ids`` (``PREFIX-N``, from :meth:`Bench.ids`) have in common, for wrk to number."""
    return ids[0].rpartition("-")[0]


LOAD_GENERATOR = (
    "wrk (C, one thread)" if wrk.available() else "aiohttp in this process (wrk not installed)"
)


@contextlib.asynccontextmanager
async def our_gateway(bench: Bench) -> AsyncIterator[Level]:
    system = bench.topology()
    yield http_level(system.gateway_url, meter(system, system.gateway), bench.sizes.load_seconds)


def start_baseline(bench: Bench, server_url: str) -> tuple[Process, str]:
    """The baseline gateway against ``server_url``, listening and connected; it and its URL."""
    port, pid = free_port(), f"baseline-{bench.tag}"
    args = ["--port", str(port), "--server-url", server_url, "--id", pid]
    process = bench.start_program("baseline_gateway", *args)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        process.raise_if_exited("before it was ready:")
        listening = http_status(f"{url}/") is not None
        return listening and stream_connected(server_url, topology.GATEWAY_GROUP, pid)

    wait_until(ready, READY_TIMEOUT, "the baseline gateway to listen and connect")
    return process, url


@contextlib.asynccontextmanager
async def baseline(bench: Bench) -> AsyncIterator[Level]:
    system = bench.topology()
    process, url = start_baseline(bench, system.server_url)
    try:
        yield http_level(url, meter(system, process), bench.sizes.load_seconds)
    finally:
        process.stop()


@contextlib.asynccontextmanager
async def original(bench: Bench) -> AsyncIterator[Level]:
    """The original topology on a server of its own: Flask gateway, services a, b, c."""
    with bench.procs.scope():
        server = bench.procs.spawn_server(bench.log_dir / f"original-{bench.tag}.db")
        server.wait()
        gateway, url = start_baseline(bench, server.url)
        nodes = []
        for name in AWAIT_CHAIN.nodes:
            pid = f"{name}-original-{bench.tag}"
            args = [name, "--server-url", server.url, "--id", pid]
            nodes.append(bench.start_program("original_node", *args, name=f"original-{name}"))
            group = topology.NODES[name].group
            wait_until(
                lambda g=group, p=pid: stream_connected(server.url, g, p),
                READY_TIMEOUT,
                f"the original service {name} to connect",
            )
        roles = {"server": [server.process.pid], "gateway": [gateway.pid]}
        cpu = CpuMeter({**roles, "nodes": [n.pid for n in nodes], "driver": [os.getpid()]})
        yield http_level(url, cpu, bench.sizes.load_seconds)


def timed_ids(
    prefix: str, seconds: float, cap: int, clock: Callable[[], float] = time.perf_counter
) -> Iterator[str]:
    """``PREFIX-0``, ``PREFIX-1`` ... until ``seconds`` are up (from the first), ``cap`` at most.

    What a wrk load sends (:mod:`benchmarks.wrk`), for a load in this process.
    """
    deadline: float | None = None
    for number in range(cap):
        now = clock()
        if deadline is None:
            deadline = now + seconds
        elif now >= deadline:
            return
        yield f"{prefix}-{number}"


@contextlib.asynccontextmanager
async def direct(bench: Bench) -> AsyncIterator[Level]:
    system = bench.topology()
    resonate = await connect_client(system.server_url)
    cpu = meter(system, None)  # our gateway is up, idle, not in the path
    seconds = bench.sizes.load_seconds

    async def level(ids: list[str], warmup: list[str], callers: int) -> LoadResult:
        call = client_call(resonate)
        if not wrk.available():
            return await warmed(call, ids, warmup, callers, cpu)
        # As long as a wrk load runs, at most as many invocations (see http_level).
        await drive(call, warmup, callers)
        ids_in_time = timed_ids(id_prefix(ids), seconds, CAP_PER_ID * len(ids))
        return await drive(call, ids_in_time, callers, cpu)

    try:
        yield level
    finally:
        await resonate.stop()


@contextlib.asynccontextmanager
async def floor(bench: Bench) -> AsyncIterator[Level]:
    async def level(ids: list[str], warmup: list[str], callers: int) -> LoadResult:
        resonate, _ = in_process(state=IndexedServerState())
        try:
            return await warmed(client_call(resonate), ids, warmup, callers, CpuMeter.driver_only())
        finally:
            await resonate.stop()

    yield level


# ── A part per way ───────────────────────────────────────────────────────────

CPU_COLUMNS = ("CPU ms per invocation", "cores used")
ROLE_ABBREVIATIONS = {"server": "srv", "gateway": "gw", "nodes": "nodes", "driver": "drv"}
CPU_NOTE = (
    "CPU ms per invocation: user+system CPU (from /proc) during the level over completed "
    "invocations; srv = server, gw = gateway, nodes = the worker nodes, drv = this benchmark "
    "process (the load generator, or the SDK client itself); the product's CPU (in the JSON) "
    "leaves the load generator out. cores used: all that CPU over the level's wall time (at "
    "most 2 here, 1 for the one-process floor); well under that, the machine's other work "
    "or waiting held the run back"
)


def level_json(level: LoadResult, product: tuple[str, ...]) -> dict[str, Any]:
    """A level's numbers, plus the CPU ms per invocation of the ``product`` roles summed."""
    body = level.to_json()
    per = level.cpu_ms_per_invocation()
    if per:
        total = sum(per.get(role, 0.0) for role in product)
        body["product_cpu_ms_per_invocation"] = round(total, 2)
    return body


@dataclass(frozen=True)
class Contender:
    """One way to drive the await chain, and the part that measures it at each level."""

    name: str
    label: str
    title: str
    #: The roles whose CPU is the product's.
    product: tuple[str, ...]
    open: Callable[[Bench], contextlib.AbstractAsyncContextManager[Level]]

    async def levels(self, bench: Bench) -> list[LoadResult]:
        measured = []
        async with self.open(bench) as level:
            for callers in bench.sizes.callers:
                count = bench.sizes.invocations(bench.sizes.throughput, callers)
                bench.say(f"{self.name}: await chain, {callers} callers x {count} invocations")
                warmup = bench.ids(f"{self.name}-{callers}-warm", min(callers, 16))
                ids = bench.ids(f"{self.name}-{callers}", count)
                measured.append(await level(ids, warmup, callers))
        return measured

    def run(self, bench: Bench) -> PartResult:
        levels = asyncio.run(self.levels(bench))
        data = {"levels": {str(lv.callers): level_json(lv, self.product) for lv in levels}}
        table = Table(
            self.title,
            [*("callers", "invocations", "inv/s", "p50 ms", "p99 ms", "errors"), *CPU_COLUMNS],
        )
        notes = []
        for lv in levels:
            cpu = " ".join(
                f"{ROLE_ABBREVIATIONS.get(role, role)} {value:.1f}"
                for role, value in lv.cpu_ms_per_invocation().items()
            )
            cores = "-" if lv.cores_used is None else f"{lv.cores_used:.2f}"
            latency = (ms(lv.latency.p50_ms), ms(lv.latency.p99_ms))
            table.add(
                lv.callers, lv.invocations, rate(lv.per_second), *latency, lv.errors, cpu, cores
            )
            if lv.errors:
                notes.append(f"{lv.callers} callers: {lv.errors} error(s), first: {lv.first_error}")
        return PartResult(self.name, data=data, tables=[table], notes=[*notes, CPU_NOTE])


OUR_GATEWAY = Contender(
    "throughput",
    "our gateway",
    "Await chain through our gateway (FastAPI on uvicorn)",
    HTTP_PRODUCT,
    our_gateway,
)
BASELINE = Contender(
    "baseline",
    "Flask-style baseline gateway",
    "Await chain through the Flask-style baseline gateway (Flask dev server, threaded, "
    "asyncio loop in a thread, blocking handlers)",
    HTTP_PRODUCT,
    baseline,
)
ORIGINAL = Contender(
    "original",
    "the original topology",
    "Await chain through the original example's topology (Flask gateway, services a b c with "
    "the SDK's defaults, on a server of their own)",
    HTTP_PRODUCT,
    original,
)
DIRECT = Contender(
    "direct",
    "direct SDK client",
    "Await chain from an SDK client, no gateway (resonate.rpc + result)",
    ("server", "nodes", "driver"),
    direct,
)
FLOOR = Contender(
    "floor",
    "in-process floor",
    "Await chain, whole topology in one process (SDK LocalConnection)",
    ("driver",),
    floor,
)
CONTENDERS = (OUR_GATEWAY, ORIGINAL, DIRECT, FLOOR)
