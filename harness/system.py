"""The example's topology as real processes: a server, the gateway and worker nodes.

Each process listens on 127.0.0.1 (a free port where it listens at all) and
is started through a :class:`~harness.processes.Processes`, which stops it.
A node is ready once it printed asyncrpc's ready line; the gateway once it
also answers ``/healthz``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from asyncrpc.lesson import topology
from asyncrpc.runtime import config
from harness.isolation import free_port
from harness.processes import ASYNCRPC, READY_TIMEOUT, Process, Processes, Server
from harness.waiting import http_get, http_ok, wait_until

READY_LINE = re.compile(rf"(?m)^{re.escape(config.READY_MARKER)} ")


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


def printed_ready(process: Process) -> bool:
    """True once ``process`` printed its ready line; fails if it exited first."""
    if READY_LINE.search(process.output()):
        return True
    process.raise_if_exited("before printing its ready line:")
    return False


def wait_ready(*processes: Process, timeout: float = READY_TIMEOUT) -> None:
    """Wait for each process's ready line."""
    for process in processes:
        wait_until(lambda p=process: printed_ready(p), timeout, f"{process.name}'s ready line")


def stream_connected(server_url: str, group: str, pid: str | None = None) -> bool:
    """Whether a poll stream of ``group`` (and ``pid``) is connected to the server."""
    try:
        streams = http_get(f"{server_url}/streams", timeout=2.0).json()["streams"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return any(s["group"] == group and pid in (None, s["pid"]) for s in streams)


@dataclass
class System:
    """Server + gateway + worker nodes, every one a separate process."""

    server: Server
    gateway: Process | None = None
    gateway_url: str = ""
    nodes: dict[str, Process] = field(default_factory=dict)
    #: Seconds from starting the server until every process was ready.
    ready_after: float = 0.0

    @property
    def server_url(self) -> str:
        return self.server.url

    def processes(self) -> list[Process]:
        members = [self.server.process, self.gateway, *self.nodes.values()]
        return [p for p in members if p is not None]

    def stop(self) -> None:
        for process in reversed(self.processes()):
            process.stop()


def start_system(
    procs: Processes,
    db: Path | str = ":memory:",
    nodes: Iterable[str] = tuple(topology.NODES),
    node_args: Mapping[str, list[str]] | None = None,
    gateway: bool = True,
    timeout: float = READY_TIMEOUT,
    server_args: tuple[str, ...] = (),
) -> System:
    """Start the server, then the gateway and ``nodes`` all at once; wait until all are ready.

    Worker nodes get the unique id ``NAME-1`` and ``node_args[NAME]`` (such as
    ``["--delay", "2"]``, the crash-demo pause, or ``["--ttl", "3"]``).
    ``ready_after`` counts from the server's start to the last process ready.
    """
    server = procs.spawn_server(db, extra=server_args)
    server.wait(timeout)
    system = System(server)
    if gateway:
        system.gateway, system.gateway_url = start_gateway(procs, server.url)
    for name in nodes:
        extra = (node_args or {}).get(name, [])
        system.nodes[name] = start_node(procs, name, server.url, "--id", f"{name}-1", *extra)
    wait_ready(*system.processes()[1:], timeout=timeout)
    if system.gateway is not None:
        health = f"{system.gateway_url}/healthz"
        wait_until(lambda: http_ok(health), timeout, "the gateway's /healthz")
    system.ready_after = time.monotonic() - server.process.started_at
    return system
