"""The ``soak`` part: flows for minutes against a server with a short retention.

A server started with ``--retain`` (``soak_retain``), a gateway and the
await chain's nodes (a, b, c); four callers run await-chain invocations, each
with a new id, for ``soak_seconds``. Every ``soak_sample_s`` it reads the
server's promise count (``/healthz``), its RSS, the RSS of every process,
and the database's size on disk (the file and its WAL). Bounded means: the
promises held stay near (flow rate x (retention + one retention interval)),
and memory and disk stop growing once retention starts forgetting, however
many flows have run.
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bench import AWAIT_CHAIN, Bench, BenchError
from benchmarks.measure import rss_bytes, total_rss_bytes
from benchmarks.report import PartResult, Table, mib
from harness.system import start_system

CALLERS = 4


def disk_bytes(db: Path) -> int:
    """The database file and its WAL files."""
    return sum(
        path.stat().st_size
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))
        if path.exists()
    )


def run(bench: Bench) -> PartResult:
    sizes = bench.sizes
    result = PartResult("soak")
    db = bench.log_dir / "soak.db"
    with bench.procs.scope():
        system = start_system(
            bench.procs,
            db,
            nodes=AWAIT_CHAIN.nodes,
            server_args=("--retain", sizes.soak_retain),
        )
        counter = itertools.count()
        done = {"ok": 0, "failed": 0}
        lock = threading.Lock()
        stop_at = time.monotonic() + sizes.soak_seconds

        def caller(index: int) -> None:
            with httpx.Client(base_url=system.gateway_url, timeout=60) as client:
                while time.monotonic() < stop_at:
                    invocation = f"soak-{index}-{next(counter)}"
                    response = client.post(AWAIT_CHAIN.route, params={"id": invocation})
                    with lock:
                        done["ok" if response.status_code == 200 else "failed"] += 1

        samples: list[dict[str, Any]] = []
        started = time.monotonic()
        with ThreadPoolExecutor(CALLERS) as pool:
            futures = [pool.submit(caller, i) for i in range(CALLERS)]
            while time.monotonic() < stop_at:
                time.sleep(min(sizes.soak_sample_s, max(0.0, stop_at - time.monotonic())))
                health = httpx.get(f"{system.server_url}/healthz", timeout=10).json()
                pids = [p.pid for p in system.processes()]
                samples.append(
                    {
                        "elapsed_s": round(time.monotonic() - started, 1),
                        "flows": done["ok"],
                        "promises": health["promises"],
                        "server_rss_bytes": rss_bytes(system.server.process.pid),
                        "rss_bytes": total_rss_bytes(pids),
                        "db_bytes": disk_bytes(db),
                    }
                )
                bench.say(f"soak: {samples[-1]}")
            for future in futures:
                future.result()
    if done["failed"]:
        raise BenchError(f"{done['failed']} soak invocations did not answer 200")
    result.data = {"retain": sizes.soak_retain, "callers": CALLERS, "samples": samples, **done}
    table = Table(
        f"Soak: await chain for {sizes.soak_seconds:g} s, {CALLERS} callers, "
        f"--retain {sizes.soak_retain}",
        ["at s", "flows done", "promises held", "server RSS MiB", "all RSS MiB", "db MiB"],
    )
    for sample in samples:
        table.add(
            sample["elapsed_s"],
            sample["flows"],
            sample["promises"],
            mib(sample["server_rss_bytes"]),
            mib(sample["rss_bytes"]),
            mib(sample["db_bytes"]),
        )
    result.tables.append(table)
    return result
