"""The ``roundtrip`` part: each flow through the gateway, one invocation at a time.

Every invocation has its own id. For the flows that wait (await chain,
fan-out) the latency is the caller's ``POST`` until the answer
``{"message": 3}``. The detached chain answers as soon as its first step is
durable, so it gets two numbers: that answer ("started"), and the time until
its last step ``cog`` has resolved with 3 ("complete"): from just before the
``POST`` to the ``settledAt`` the server stamped on cog's promise (same
machine, same wall clock, 1 ms resolution). cog's promise is found by the
server reader's search on the ``resonate:origin`` tag, polled every 10 ms;
the poll only decides when the next invocation may start, not the number.
Requests to the gateway go through aiohttp (see :mod:`benchmarks.load_client`).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from asyncrpc.lesson import topology
from asyncrpc.protocol.errors import ServerRefused, ServerUnavailable
from asyncrpc.protocol.records import PromiseRecord
from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import ORIGIN_TAG
from asyncrpc.readers.server_reader import ServerReader
from benchmarks import load_client
from benchmarks.bench import Bench, BenchError
from benchmarks.measure import Summary
from benchmarks.report import PartResult, Table, ms
from harness.waiting import POLL_S

WARMUP = 3
#: The longest one invocation may take before the run counts as broken.
CALL_TIMEOUT = 60.0
#: What one failed invocation raises (counted as an error; the next one runs).
FAILURES = (BenchError, aiohttp.ClientError, ServerUnavailable, ServerRefused, TimeoutError)


def last_step(server: ServerReader, root_id: str, group: str) -> PromiseRecord | None:
    """The resolved promise of ``root_id``'s call graph that targets ``group``, if any."""
    found = server.search(tags={ORIGIN_TAG: root_id}, state=PromiseState.RESOLVED)
    return next((record for record in found if record.group == group), None)


async def round_trip(
    gateway: aiohttp.ClientSession, server: ServerReader, flow: topology.Flow, invocation_id: str
) -> dict[str, float]:
    """POST ``flow``: seconds until the answer and, for the detached chain, until it completed."""
    wall_began = time.time()
    began = time.perf_counter()
    status, body = await load_client.post(gateway, flow.route, params={"id": invocation_id})
    answered = time.perf_counter() - began
    if status != 200 or (flow.waits_for_result and body != {"message": flow.expected_result}):
        raise BenchError(f"{status} {str(body)[:300]}")
    if flow.waits_for_result:
        return {"answer": answered}
    group = topology.NODES[flow.nodes[-1]].group
    deadline = time.monotonic() + CALL_TIMEOUT
    while (record := last_step(server, invocation_id, group)) is None:
        if time.monotonic() > deadline:
            raise BenchError(f"the last step did not resolve within {CALL_TIMEOUT:g}s")
        await asyncio.sleep(POLL_S)
    if record.value != flow.expected_result or record.settled_at is None:
        raise BenchError(f"the last step got {record.value!r}")
    return {"started": answered, "complete": record.settled_at / 1000 - wall_began}


async def flow_round_trips(
    gateway_url: str, server_url: str, flow: topology.Flow, ids: list[str]
) -> tuple[dict[str, list[float]], list[str]]:
    """Invoke ``flow`` once per id, one after the other: the samples (after warm-up), the errors."""
    samples: dict[str, list[float]] = {}
    errors: list[str] = []
    server = ServerReader(server_url)
    async with load_client.session(gateway_url, 1, CALL_TIMEOUT) as gateway:
        for n, invocation_id in enumerate(ids):
            try:
                took = await round_trip(gateway, server, flow, invocation_id)
            except FAILURES as exc:
                errors.append(f"{invocation_id}: {exc}")
                continue
            if n >= WARMUP:
                for what, seconds in took.items():
                    samples.setdefault(what, []).append(seconds)
    return samples, errors


UNTIL = {
    "answer": "answer (result)",
    "started": "answer (started)",
    "complete": "last step resolved",
}


def run(bench: Bench) -> PartResult:
    system = bench.topology()
    count = bench.sizes.roundtrip
    result = PartResult("roundtrip")
    table = Table(
        f"Round trip through the gateway, sequential ({count} invocations per flow)",
        ["flow", "measured until", "p50 ms", "p99 ms", "mean ms", "max ms", "errors"],
    )
    for flow in topology.FLOWS.values():
        bench.say(f"round trip: {flow.name} x {count}")
        ids = bench.ids(f"rt-{flow.name}", WARMUP + count)
        samples, errors = asyncio.run(
            flow_round_trips(system.gateway_url, system.server_url, flow, ids)
        )
        summaries = {what: Summary.of(values) for what, values in samples.items()}
        result.data[flow.name] = {
            **{what: summary.to_json() for what, summary in summaries.items()},
            "errors": len(errors),
            **({"first_error": errors[0]} if errors else {}),
        }
        for what, summary in summaries.items():
            table.add(
                flow.name,
                UNTIL[what],
                ms(summary.p50_ms),
                ms(summary.p99_ms),
                ms(summary.mean_ms),
                ms(summary.max_ms),
                len(errors),
            )
        if errors:
            result.notes.append(f"{flow.name}: {len(errors)} error(s), first: {errors[0]}")
    result.tables.append(table)
    result.notes.append(
        "detached chain 'last step resolved': from before the POST to the settledAt the "
        "server stamped on cog's promise (found by a search on its origin tag)"
    )
    return result
