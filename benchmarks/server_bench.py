"""How fast is `asyncrpc server`, and how fast does it restart?

    uv run python -m benchmarks.server_bench [--pairs 2000] [--promises 10000]

Measures, against a real server process on loopback with a SQLite file:
- protocol requests per second for promise.create + promise.settle pairs,
  one client sequentially and 16 concurrent clients;
- restart time after `kill -9` with N stored promises: process start to
  ready (GET /healthz), and the recovery the server itself reports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

FAR = 10**15


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def envelope(kind: str, **data: object) -> dict[str, object]:
    return {"kind": kind, "head": {"corrId": "b", "version": ""}, "data": data}


class ServerProcess:
    def __init__(self, db: Path, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        started = time.perf_counter()
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "asyncrpc", "server", "--port", str(port), "--db", str(db)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.popen.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
            time.sleep(0.01)
        self.ready_after = time.perf_counter() - started

    def kill(self) -> None:
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()


def sequential_pairs(url: str, pairs: int, prefix: str) -> float:
    with httpx.Client(base_url=url) as client:
        started = time.perf_counter()
        for i in range(pairs):
            client.post("/", json=envelope("promise.create", id=f"{prefix}{i}", timeoutAt=FAR))
            client.post("/", json=envelope("promise.settle", id=f"{prefix}{i}", state="resolved"))
        elapsed = time.perf_counter() - started
    return 2 * pairs / elapsed


async def concurrent_pairs(url: str, pairs: int, prefix: str, clients: int) -> float:
    async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=clients)) as c:

        async def one_client(k: int) -> None:
            for i in range(k, pairs, clients):
                await c.post("/", json=envelope("promise.create", id=f"{prefix}{i}", timeoutAt=FAR))
                await c.post(
                    "/", json=envelope("promise.settle", id=f"{prefix}{i}", state="resolved")
                )

        started = time.perf_counter()
        await asyncio.gather(*(one_client(k) for k in range(clients)))
        elapsed = time.perf_counter() - started
    return 2 * pairs / elapsed


def fill(url: str, count: int, prefix: str) -> None:
    with httpx.Client(base_url=url) as client:
        for i in range(count):
            client.post("/", json=envelope("promise.create", id=f"{prefix}{i}", timeoutAt=FAR))


def recovery_seconds(log: Path) -> float:
    found = re.findall(r"recovered \d+ promises .* in ([0-9.]+)s", log.read_text())
    return float(found[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--promises", type=int, nargs="+", default=[10_000])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db, log, port = Path(tmp) / "bench.db", Path(tmp) / "server.log", free_port()
        server = ServerProcess(db, port, log)
        try:
            results["create+settle req/s, 1 client"] = sequential_pairs(server.url, args.pairs, "s")
            results["create+settle req/s, 16 clients"] = asyncio.run(
                concurrent_pairs(server.url, args.pairs, "c", 16)
            )
            stored = 2 * args.pairs
            for target in sorted(args.promises):
                fill(server.url, target - stored, f"f{target}-")
                stored = target
                server.kill()
                server = ServerProcess(db, port, log)
                results[f"restart with {target} promises: start to ready, s"] = server.ready_after
                results[f"restart with {target} promises: recovery, s"] = recovery_seconds(log)
        finally:
            server.kill()
    width = max(map(len, results))
    for name, value in results.items():
        print(f"{name:<{width}}  {value:10.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
