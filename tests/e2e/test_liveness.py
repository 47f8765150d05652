"""A replica stopped with SIGSTOP keeps its poll stream open but takes no work: the server
notices, and every flow finishes on the other replica, within the lease time."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from asyncrpc.lesson.topology import FLOWS
from harness.processes import Processes
from harness.system import start_node, start_system, stream_connected, wait_ready
from harness.waiting import wait_until

AWAIT_CHAIN = FLOWS["await-chain"]
FLOWS_AFTER_STOP = 10
TTL = "5"


def test_a_stopped_replica_gets_no_work_and_ten_flows_finish_with_3(procs: Processes) -> None:
    system = start_system(procs, nodes=["a", "b", "c"], node_args={"c": ["--ttl", TTL]})
    standby = start_node(procs, "c", system.server_url, "--id", "c-2", "--ttl", TTL)
    wait_ready(standby)
    wait_until(lambda: stream_connected(system.server_url, "service-c", "c-2"), 20, "c-2's stream")
    stopped = system.nodes["c"]
    stopped.kill(signal.SIGSTOP)
    try:
        started = time.monotonic()

        def run(i: int) -> httpx.Response:
            return httpx.post(
                f"{system.gateway_url}{AWAIT_CHAIN.route}",
                params={"id": f"stopped-replica-{i}"},
                timeout=60,
            )

        with ThreadPoolExecutor(FLOWS_AFTER_STOP) as pool:
            responses = list(pool.map(run, range(FLOWS_AFTER_STOP)))
        elapsed = time.monotonic() - started
        assert [r.json() for r in responses] == [{"message": 3}] * FLOWS_AFTER_STOP
        # Work sent to the stopped replica moves within an ack bound, long before the 5 s
        # retry would have sent each of it again, one chance in two, to the live one.
        assert elapsed < 15, f"ten flows took {elapsed:.1f}s with one replica stopped"
        assert not stream_connected(system.server_url, "service-c", "c-1")
    finally:
        stopped.kill(signal.SIGCONT)
    wait_until(lambda: stream_connected(system.server_url, "service-c", "c-1"), 20, "c-1 back")
