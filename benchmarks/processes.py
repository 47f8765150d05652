"""The processes a benchmark drives: server, gateway, worker nodes; started, waited for, stopped.

Every part starts its processes through one :class:`~tests.support.Processes`
(the same helper the end-to-end tests use), which the runner stops at the end,
also on Ctrl-C or an error: each process runs in its own session, on
127.0.0.1 with a free port, and only the pids started here are ever
signalled. Waits poll every 10 ms (start-up and recovery times are measured
with them) and are bounded.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from asyncrpc import config, topology
from benchmarks.measure import CpuMeter
from tests.support import ASYNCRPC, Process, Processes, free_port, isolated_env, wait_until

#: The repository root: benchmark-only programs run as ``python -m benchmarks.<module>`` from it.
ROOT = Path(__file__).resolve().parent.parent
#: How often waits look again.
POLL_S = 0.01
#: Starting ten Python processes at once on two shared cores takes a while.
READY_TIMEOUT = 120.0
READY_LINE = re.compile(rf"(?m)^{re.escape(config.READY_MARKER)} ")


class BenchError(RuntimeError):
    """A benchmark could not run (a process died, a wait timed out, an answer was wrong)."""


def wait_for[T](predicate: Callable[[], T], timeout: float, what: str) -> T:
    """Poll ``predicate`` every 10 ms until it returns something truthy; raise after ``timeout``."""
    try:
        return wait_until(predicate, timeout, what, poll=POLL_S)
    except TimeoutError as exc:
        raise BenchError(str(exc)) from None


@contextlib.contextmanager
def session(log_dir: Path) -> Iterator[Processes]:
    """A :class:`Processes` whose every process is stopped when the block ends, however."""
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = Processes(log_dir=log_dir, base_env=isolated_env(log_dir / "run"))
    try:
        yield procs
    finally:
        procs.stop_all()


def alive_or_fail(process: Process) -> None:
    if not process.alive():
        raise BenchError(
            f"{process.name} exited ({process.popen.returncode}):\n{process.output()[-2000:]}"
        )


def printed_ready(process: Process) -> bool:
    """True once ``process`` printed its ready line; fails if it died first."""
    if READY_LINE.search(process.output()):
        return True
    alive_or_fail(process)
    return False


def http_status(url: str, timeout: float = 1.0) -> int | None:
    try:
        return httpx.get(url, timeout=timeout).status_code
    except httpx.HTTPError:
        return None


# ── The server ──────────────────────────────────────────────────────────────


@dataclass
class Server:
    """A started `asyncrpc server` process and where it listens."""

    process: Process
    url: str
    port: int
    db: Path | str
    started_at: float


def start_server(procs: Processes, db: Path | str, port: int | None = None) -> Server:
    """`asyncrpc server` on ``port`` (default: a free one) with database ``db``; not waited for."""
    port = port or free_port()
    process = procs.start("server", [*ASYNCRPC, "server", "--port", str(port), "--db", str(db)])
    return Server(process, f"http://127.0.0.1:{port}", port, db, time.monotonic())


def server_ready(server: Server) -> bool:
    if http_status(f"{server.url}/healthz", timeout=0.5) == 200:
        return True
    alive_or_fail(server.process)
    return False


def wait_server(server: Server, timeout: float = READY_TIMEOUT) -> float:
    """Wait until the server answers GET /healthz; return the seconds since it was started."""
    wait_for(lambda: server_ready(server), timeout, "the server to answer /healthz")
    return time.monotonic() - server.started_at


def protocol(
    url: str, kind: str, /, client: httpx.Client | None = None, **data: Any
) -> dict[str, Any]:
    """One protocol request to the server: the response's ``data`` plus its ``status``."""
    envelope = {"kind": kind, "head": {"corrId": "bench", "version": ""}, "data": data}
    if client is None:
        reply = httpx.post(f"{url}/", json=envelope, timeout=10.0)
    else:
        reply = client.post(f"{url}/", json=envelope)
    body = reply.json()
    return {"status": body.get("head", {}).get("status"), **(body.get("data") or {})}


def streams(url: str) -> list[dict[str, Any]]:
    """The poll streams connected to the server (group, pid)."""
    try:
        return httpx.get(f"{url}/streams", timeout=2.0).json()["streams"]
    except (httpx.HTTPError, ValueError, KeyError):
        return []


def stream_connected(url: str, group: str, pid: str | None = None) -> bool:
    return any(s["group"] == group and (pid is None or s["pid"] == pid) for s in streams(url))


# ── Nodes and gateway ──────────────────────────────────────────────────────


def start_module(procs: Processes, name: str, module: str, *args: str) -> Process:
    """``python -m benchmarks.<module> ARGS``: a benchmark-only program (not waited for)."""
    return procs.start(
        name,
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        env={"PYTHONPATH": str(ROOT)},
    )


def start_node(procs: Processes, name: str, server_url: str, *extra: str) -> Process:
    """`asyncrpc node NAME` (not waited for)."""
    return procs.start(
        f"node-{name}", [*ASYNCRPC, "node", name, "--server-url", server_url, *extra]
    )


def start_gateway(procs: Processes, server_url: str) -> tuple[Process, str]:
    """`asyncrpc node gateway` on a free port (not waited for); returns it and its URL."""
    port = free_port()
    process = procs.start(
        "gateway",
        [*ASYNCRPC, "node", "gateway", "--port", str(port), "--server-url", server_url],
    )
    return process, f"http://127.0.0.1:{port}"


def gateway_ready(process: Process, url: str) -> bool:
    if http_status(f"{url}/healthz", timeout=0.5) == 200:
        return True
    alive_or_fail(process)
    return False


def wait_node(process: Process, timeout: float = READY_TIMEOUT) -> None:
    wait_for(lambda: printed_ready(process), timeout, f"{process.name} to print its ready line")


@dataclass
class Topology:
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

    def meter(self, gateway: Process | None = None, with_gateway: bool = True) -> CpuMeter:
        """CPU of the server, a gateway (default: ours), the nodes, and this process."""
        chosen = (gateway or self.gateway) if with_gateway else None
        roles = {"server": [self.server.process.pid]}
        if chosen is not None:
            roles["gateway"] = [chosen.pid]
        roles["nodes"] = [p.pid for p in self.nodes.values()]
        roles["driver"] = [os.getpid()]
        return CpuMeter(roles)


def start_topology(
    procs: Processes,
    db: Path | str,
    nodes: Iterable[str] = tuple(topology.NODES),
    node_args: dict[str, list[str]] | None = None,
    gateway: bool = True,
    timeout: float = READY_TIMEOUT,
) -> Topology:
    """Start the server, then the gateway and ``nodes`` all at once; wait until all are ready.

    Worker nodes get the unique id ``NAME-1``. ``ready_after`` counts from
    the server's start to the last process ready.
    """
    server = start_server(procs, db)
    wait_server(server, timeout)
    system = Topology(server=server)
    if gateway:
        system.gateway, system.gateway_url = start_gateway(procs, server.url)
    for name in nodes:
        extra = (node_args or {}).get(name, [])
        system.nodes[name] = start_node(procs, name, server.url, "--id", f"{name}-1", *extra)
    for process in system.nodes.values():
        wait_node(process, timeout)
    if system.gateway is not None:
        gw, url = system.gateway, system.gateway_url
        wait_for(lambda: gateway_ready(gw, url), timeout, "the gateway's /healthz")
    system.ready_after = time.monotonic() - server.started_at
    return system


# ── Memory ───────────────────────────────────────────────────────────────────


def descendants(pids: Iterable[int]) -> set[int]:
    """``pids`` and every process below them (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (VmRSS), 0 if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def total_rss_bytes(pids: Iterable[int]) -> int:
    """RSS summed over ``pids`` and their descendants."""
    return sum(rss_bytes(pid) for pid in descendants(pids))
