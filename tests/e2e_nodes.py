"""Start the gateway and worker nodes as real processes, for the flow end-to-end tests."""

from __future__ import annotations

import httpx

from asyncrpc import config
from tests.support import ASYNCRPC, Process, Processes, free_port, http_ok, wait_until

#: Starting ten Python processes at once on two shared cores takes a while.
READY_TIMEOUT = 90.0


def start_node(procs: Processes, name: str, server_url: str, *extra: str) -> Process:
    """`asyncrpc node NAME` against ``server_url`` (not yet waited for)."""
    return procs.start(
        f"node-{name}", [*ASYNCRPC, "node", name, "--server-url", server_url, *extra]
    )


def start_gateway(procs: Processes, server_url: str, *extra: str) -> tuple[Process, str]:
    """`asyncrpc node gateway` on a free port (not yet waited for); returns it and its URL."""
    port = free_port()
    process = procs.start(
        "gateway",
        [*ASYNCRPC, "node", "gateway", "--port", str(port), "--server-url", server_url, *extra],
    )
    return process, f"http://127.0.0.1:{port}"


def wait_ready(*processes: Process) -> None:
    """Wait for each process's ready line."""
    for process in processes:
        process.wait_for_output(f"(?m)^{config.READY_MARKER} ", timeout=READY_TIMEOUT)


def start_system(
    procs: Processes, nodes: list[str], delays: dict[str, float] | None = None
) -> tuple[str, str, dict[str, Process]]:
    """Server, gateway and ``nodes``, all ready: returns server URL, gateway URL, nodes."""
    _, server_url = procs.start_server()
    gateway, gateway_url = start_gateway(procs, server_url)
    started = {}
    for name in nodes:
        delay = (delays or {}).get(name)
        extra = ["--delay", str(delay)] if delay else []
        started[name] = start_node(procs, name, server_url, "--id", f"{name}-1", *extra)
    wait_ready(gateway, *started.values())
    wait_until(lambda: http_ok(f"{gateway_url}/healthz"), READY_TIMEOUT, "the gateway's /healthz")
    return server_url, gateway_url, started


def post(gateway_url: str, route: str, timeout: float = 60.0, **params: object) -> httpx.Response:
    return httpx.post(f"{gateway_url}{route}", params=params, timeout=timeout)
