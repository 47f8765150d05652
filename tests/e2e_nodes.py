"""The gateway and worker nodes as real processes, for the flow end-to-end tests."""

from __future__ import annotations

import httpx

from harness import system
from harness.processes import READY_TIMEOUT, Process, Processes
from harness.system import start_gateway, start_node, wait_ready

__all__ = ["READY_TIMEOUT", "post", "start_gateway", "start_node", "start_system", "wait_ready"]


def start_system(
    procs: Processes, nodes: list[str], delays: dict[str, float] | None = None
) -> tuple[str, str, dict[str, Process]]:
    """Server, gateway and ``nodes``, all ready: returns server URL, gateway URL, nodes.

    ``delays[NAME]`` is node NAME's crash-demo pause (``--delay``).
    """
    node_args = {name: ["--delay", str(delay)] for name, delay in (delays or {}).items() if delay}
    started = system.start_system(procs, nodes=nodes, node_args=node_args)
    return started.server_url, started.gateway_url, started.nodes


def post(gateway_url: str, route: str, timeout: float = 60.0, **params: object) -> httpx.Response:
    return httpx.post(f"{gateway_url}{route}", params=params, timeout=timeout)
