"""End-to-end on resonate-pg: `up --server postgres`, nodes started by hand, crashes mid-flow.

One system per module: `asyncrpc up --server postgres --detach` runs Postgres
(with resonate.sql), the gateway and most nodes; c, f and i run as separate
`asyncrpc node NAME --server-url postgresql://...` processes, as nodes on
other machines would. Node b pauses 2 s (a durable sleep) after bar, the
window in which the tests crash a node or Postgres itself. Skipped without
ASYNCRPC_RESONATE_SQL (resonate.sql is not part of the project).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from asyncrpc.lesson import topology
from asyncrpc.postgres.schema import RESONATE_SQL_ENV
from asyncrpc.protocol.call_graph import CallNode
from asyncrpc.protocol.errors import ServerUnavailable
from asyncrpc.protocol.records import PromiseRecord
from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import ORIGIN_TAG
from asyncrpc.readers.server_reader import AsyncServerReader, ServerReader
from asyncrpc.runtime import config
from harness.isolation import free_port
from harness.launched import Launched, launched
from harness.processes import session
from harness.system import start_node, wait_ready
from harness.waiting import wait_until

#: Run by hand, as nodes on another machine would be.
BY_HAND = ("c", "f", "i")
#: Seconds bar sleeps durably: the window for a crash mid-flow.
PAUSE = "b=2"
TIMEOUT = 120.0


@dataclass
class PgSystem:
    dsn: str
    launched: Launched

    @property
    def env(self) -> Mapping[str, str]:
        return self.launched.env

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.launched.cli(*args, timeout=timeout)

    def post(self, flow: topology.Flow, invocation_id: str, wait: float) -> httpx.Response:
        url = f"{self.launched.gateway_url}{flow.route}"
        return httpx.post(url, params={"id": invocation_id, "wait": wait}, timeout=wait + 30)

    def graph(self, invocation_id: str) -> CallNode:
        with ServerReader(self.dsn) as reader:
            return reader.call_graph(invocation_id)


@pytest.fixture(scope="module")
def pg() -> Iterator[PgSystem]:
    schema = os.environ.get(RESONATE_SQL_ENV)
    if not schema:
        pytest.skip(f"{RESONATE_SQL_ENV} is not set (it names resonate.sql)")
    # Its `postgres` node prepares its data directory from nothing (no copy of one).
    with launched("asyncrpc-pg-e2e-", env={RESONATE_SQL_ENV: schema}) as run:
        under_up = [n for n in topology.NODES if n not in BY_HAND]
        run.up("gateway", *under_up, "--server", "postgres", "--delay", PAUSE)
        dsn = f"postgresql://postgres@127.0.0.1:{run.server_port}/postgres"
        with session(run.run_dir.parent / "by-hand", run.env) as procs:
            nodes = [start_node(procs, n, dsn) for n in BY_HAND]
            wait_ready(*nodes, timeout=TIMEOUT)
            yield PgSystem(dsn, run)


def test_every_flow_gives_3_with_some_nodes_started_by_hand(pg: PgSystem) -> None:
    for flow in topology.FLOWS.values():
        if flow.waits_for_result:
            answer = pg.post(flow, f"pg-{flow.name}", wait=60)
            assert (answer.status_code, answer.json()) == (200, {"message": 3})
    # The detached chain's result is cog's, which `call` reads from the promises table.
    result = pg.cli("call", "detached-chain", "--id", "pg-detached", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["result"] == 3, result.stdout
    tree = pg.cli("tree", "pg-fan-out")
    assert tree.returncode == 0, tree.stderr
    assert all(f"{name}(" in tree.stdout for name in ("zim", "rax", "dop")), tree.stdout


def test_the_gateway_tells_a_new_invocation_from_a_reattached_one(pg: PgSystem) -> None:
    flow = topology.FLOWS["fan-out"]
    first = pg.post(flow, "pg-twice", wait=30)
    again = pg.post(flow, "pg-twice", wait=30)
    assert (first.status_code, first.json()) == (200, {"message": 3})
    assert first.headers["X-Invocation-Reattached"] == "false"
    assert (again.status_code, again.json()) == (200, {"message": 3})
    assert again.headers["X-Invocation-Reattached"] == "true"


def read_blocking(dsn: str, invocation_id: str) -> list[object]:
    with ServerReader(dsn, timeout=5) as reader:
        return [
            reader.get(invocation_id),
            reader.get("nobody"),
            reader.search(tags={ORIGIN_TAG: invocation_id}),
            [node.id for node in reader.call_graph(invocation_id).walk()],
            reader.task_state(invocation_id),
            reader.answers(),
        ]


async def read_looped(dsn: str, invocation_id: str) -> list[object]:
    async with AsyncServerReader(dsn, timeout=5) as reader:
        return [
            await reader.get(invocation_id),
            await reader.get("nobody"),
            await reader.search(tags={ORIGIN_TAG: invocation_id}),
            [node.id for node in (await reader.call_graph(invocation_id)).walk()],
            await reader.task_state(invocation_id),
            await reader.answers(),
        ]


async def silent_looped(dsn: str) -> bool:
    async with AsyncServerReader(dsn, timeout=1) as reader:
        with pytest.raises(ServerUnavailable, match="unreachable"):
            await reader.get("r")
        return await reader.answers()


def test_both_readers_read_resonate_pg_alike(pg: PgSystem) -> None:
    answer = pg.post(topology.FLOWS["await-chain"], "pg-readers", wait=60)
    assert (answer.status_code, answer.json()) == (200, {"message": 3})
    reads = read_blocking(pg.dsn, "pg-readers")
    root, nobody, found, graph, _, answers = reads
    assert isinstance(root, PromiseRecord) and root.value == 3
    assert nobody is None and answers is True
    assert isinstance(found, list) and len(found) == len(graph) > 1
    assert asyncio.run(read_looped(pg.dsn, "pg-readers")) == reads
    nobody_listens = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    with ServerReader(nobody_listens, timeout=1) as reader:
        with pytest.raises(ServerUnavailable, match="unreachable"):
            reader.get("r")
        assert not reader.answers()
    assert not asyncio.run(silent_looped(nobody_listens))


def sleeping(pg: PgSystem, invocation_id: str) -> bool:
    """Whether bar has reached its durable sleep (so the flow is mid-way)."""
    try:
        graph = pg.graph(invocation_id)
    except Exception:
        return False
    return any(node.kind == "sleep" and node.state == PromiseState.PENDING for node in graph.walk())


def crash_mid_flow(pg: PgSystem, invocation_id: str, node: str) -> None:
    """Start an await chain, kill -9 ``node`` while bar sleeps, start it again: 3."""
    flow = topology.FLOWS["await-chain"]
    assert pg.post(flow, invocation_id, wait=0).status_code == 202
    wait_until(lambda: sleeping(pg, invocation_id), TIMEOUT, "bar's durable sleep")
    killed = pg.cli("kill", node)
    assert killed.returncode == 0, killed.stdout + killed.stderr
    started = pg.cli("start", node)
    assert started.returncode == 0, started.stdout + started.stderr
    deadline = time.monotonic() + TIMEOUT
    while True:
        answer = pg.post(flow, invocation_id, wait=10)
        if answer.status_code == 200 or time.monotonic() > deadline:
            break
    assert (answer.status_code, answer.json()) == (200, {"message": 3})


def test_a_node_killed_mid_flow_is_replaced(pg: PgSystem) -> None:
    crash_mid_flow(pg, "pg-node-crash", "b")


def test_postgres_killed_mid_flow_restarts_on_its_data(pg: PgSystem) -> None:
    crash_mid_flow(pg, "pg-postgres-crash", topology.POSTGRES)
    logs = pg.cli("logs", topology.POSTGRES)
    assert "database system was interrupted" in logs.stdout, logs.stdout[-2000:]
    status = pg.cli("status", "--json")
    postgres = [r for r in json.loads(status.stdout)["nodes"] if r["node"] == "postgres"]
    assert [(r["state"], r["restarts"]) for r in postgres] == [("running", 1)], status.stdout


def test_postgres_data_lives_in_the_run_directory(pg: PgSystem) -> None:
    run_dir = Path(pg.env[config.ENV_RUN_DIR])
    assert (run_dir / "postgres" / "PG_VERSION").is_file()
