"""The gateway as a real process: bounded waits, an unreachable server, clean stops."""

from __future__ import annotations

import signal
import time

import httpx

from asyncrpc.lesson.topology import FLOWS
from asyncrpc.runtime import config
from harness.isolation import free_port
from harness.processes import ASYNCRPC, READY_TIMEOUT, Processes
from harness.system import start_gateway, start_node, start_system
from harness.waiting import http_get, wait_until
from tests.support.gateway import post

AWAIT_CHAIN = FLOWS["await-chain"]


def test_bounded_wait_answers_202_and_the_result_comes_later(procs: Processes) -> None:
    # baz sleeps (durably) for 2 s, so a 0.2 s wait cannot see the result.
    system = start_system(procs, nodes=["a", "b", "c"], node_args={"c": ["--delay", "2"]})
    gateway_url, nodes = system.gateway_url, system.nodes

    response = post(gateway_url, AWAIT_CHAIN.route, id="slow-1", wait=0.2)

    assert response.status_code == 202
    assert response.json() == {
        "id": "slow-1",
        "state": "pending",
        "location": "/invocations/slow-1",
    }
    assert response.headers["Location"] == "/invocations/slow-1"
    assert response.headers["X-Invocation-Id"] == "slow-1"

    def resolved() -> dict | None:
        body = http_get(f"{gateway_url}/invocations/slow-1", timeout=30).json()
        return body if body["state"] == "resolved" else None

    assert wait_until(resolved, 60, "slow-1 to resolve") == {
        "id": "slow-1",
        "state": "resolved",
        "result": 3,
        "function": "foo",
    }
    assert "sleeping 2.0s (durably)" in nodes["c"].output()
    # Asking again (same id) now answers at once with the stored result.
    assert post(gateway_url, AWAIT_CHAIN.route, id="slow-1", wait=0.2).json() == {"message": 3}


def test_unreachable_server_is_a_503_with_a_clear_message(procs: Processes) -> None:
    dead_server = f"http://127.0.0.1:{free_port()}"
    gateway, gateway_url = start_gateway(procs, dead_server, "--start-timeout", "2")

    def health() -> httpx.Response | None:
        try:
            return http_get(f"{gateway_url}/healthz", timeout=5)
        except httpx.HTTPError:
            return None

    response = wait_until(health, READY_TIMEOUT, "the gateway to answer")
    assert response.status_code == 503  # type: ignore[union-attr]
    assert dead_server in response.json()["error"]  # type: ignore[union-attr]

    began = time.monotonic()
    response = post(gateway_url, AWAIT_CHAIN.route, timeout=60)

    assert 2 <= time.monotonic() - began < 10  # the bound the message names, not more
    assert response.status_code == 503
    body = response.json()
    assert body["error"].startswith(f"invocation {AWAIT_CHAIN.default_id} was NOT started")
    assert "within 2s" in body["error"] and dead_server in body["error"]
    assert (body["id"], body["started"]) == (AWAIT_CHAIN.default_id, False)
    assert config.READY_MARKER not in gateway.output()
    assert "Traceback" not in gateway.output()


def test_ready_lines_a_taken_port_and_a_clean_stop_on_sigterm(procs: Processes) -> None:
    _, server_url = procs.start_server()
    gateway, gateway_url = start_gateway(procs, server_url)
    worker = start_node(procs, "b", server_url, "--id", "b-7", "--ttl", "3")
    for process in (gateway, worker):
        process.wait_for_output(f"(?m)^{config.READY_MARKER} ", timeout=READY_TIMEOUT)
    assert (
        f"{config.READY_MARKER} node=b group=service-b id=b-7 server={server_url} "
        in worker.output()
    )
    assert worker.output().count(config.READY_MARKER) == 1
    assert "node=gateway group=gateway id=gateway-" in gateway.output()

    # A second gateway on the same port says so, and exits without starting anything.
    port = gateway_url.rsplit(":", 1)[1]
    second = procs.start("gateway-2", [*ASYNCRPC, "node", "gateway", "--port", port])
    assert second.popen.wait(timeout=60) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in second.output()
    assert "--port" in second.output()

    for process in (gateway, worker):
        process.popen.send_signal(signal.SIGTERM)
        assert process.popen.wait(timeout=30) == 0, process.output()
