"""Least-privilege roles on resonate-pg: each process its own login role, and timers still fire.

`asyncrpc postgres --role NAME=VARIABLE --reader NAME` creates login roles,
members of resonate_worker, with passwords from environment variables. With
every node and the gateway under such a role (none a superuser, none allowed
``resonate.process_timeouts()`` itself), node b's durable sleep still ends:
the processes fire the timers through the schema step's
``asyncrpc.process_timeouts()``, and the nodes take their leases in the dequeue
(``asyncrpc.dequeue_acquire``). The gateway's role reads the call graph
(``--reader``); node b's may not, and `tree` under it says so. Skipped
without ASYNCRPC_RESONATE_SQL. (tests/e2e/test_multihost.py does the same
across hosts, with passwords checked over the network.)
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asyncrpc.postgres.local import READY_LINE
from asyncrpc.runtime import config
from harness.isolation import free_port, isolated_env
from harness.postgres import copy_data
from harness.processes import ASYNCRPC, Process, Processes

ROLES = {"gateway": "asyncrpc_gateway", "a": "asyncrpc_a", "b": "asyncrpc_b", "c": "asyncrpc_c"}


@pytest.fixture
def system(
    resonate_sql: Path, postgres_data: Path
) -> Iterator[tuple[Processes, dict[str, str], dict[str, Process], str]]:
    schema = str(resonate_sql)
    base = Path(tempfile.mkdtemp(prefix="asyncrpc-roles-"))
    copy_data(postgres_data, base / "pgdata")
    procs = Processes(base, isolated_env(base / "run"))
    passwords = {role: secrets.token_hex(12) for role in ROLES.values()}
    variables = {role: f"PW_{role.upper()}" for role in ROLES.values()}
    port, gateway_port = free_port(), free_port()
    urls = {
        name: f"postgresql://{role}:{passwords[role]}@127.0.0.1:{port}/postgres"
        for name, role in ROLES.items()
    }
    try:
        postgres = procs.start(
            "postgres",
            [
                *(*ASYNCRPC, "postgres", "--data", str(base / "pgdata"), "--port", str(port)),
                *(f"--role={role}={variables[role]}" for role in ROLES.values()),
                *("--reader", ROLES["gateway"], "--schema", schema),
            ],
            env={variables[role]: passwords[role] for role in ROLES.values()},
        )
        postgres.wait_for_output(READY_LINE, 120)
        assert not any(password in postgres.output() for password in passwords.values())

        def node(name: str, *options: str) -> Process:
            return procs.start(
                name, [*ASYNCRPC, "node", name, *options], env={config.ENV_SERVER_URL: urls[name]}
            )

        nodes = {
            "gateway": node("gateway", "--port", str(gateway_port)),
            "a": node("a"),
            "b": node("b", "--delay", "1"),
            "c": node("c"),
        }
        for process in nodes.values():
            process.wait_for_output(config.READY_MARKER, 120)
        yield procs, urls, nodes, f"http://127.0.0.1:{gateway_port}"
    finally:
        procs.stop_all()
        shutil.rmtree(base, ignore_errors=True)


def test_worker_roles_fire_the_timers_and_only_readers_read_the_graph(
    system: tuple[Processes, dict[str, str], dict[str, Process], str],
) -> None:
    procs, urls, nodes, gateway_url = system
    health = httpx.get(f"{gateway_url}/healthz", timeout=10).json()
    assert health["timers"].startswith("this process (asyncrpc.process_timeouts()), "), health

    answer = httpx.post(
        f"{gateway_url}/await-chain", params={"id": "roles-1", "wait": 60}, timeout=90
    )
    assert (answer.status_code, answer.json()) == (200, {"message": 3})
    assert "slept 1.0s, returning 2" in nodes["b"].output()  # the durable sleep's timer fired
    # One of the four least-privilege processes won the election; it drives timers and retention.
    drivers = [p for p in nodes.values() if "this process drives the timers" in p.output()]
    assert len(drivers) == 1, [p.output()[-500:] for p in nodes.values()]
    for process in nodes.values():
        assert "may not fire timers" not in process.output(), process.name
        assert "asyncrpc.collect() refused" not in process.output(), process.name
        # The nodes take their leases in the dequeue, and the SDK uses every one it is given.
        assert "tasks are acquired one request each" not in process.output(), process.name
        assert "went unused" not in process.output(), process.name

    graph = httpx.get(f"{gateway_url}/invocations/roles-1/graph", timeout=30)
    assert graph.status_code == 200 and len(graph.json()["steps"]) >= 3, graph.text

    refused = subprocess.run(
        [*ASYNCRPC, "tree", "roles-1"],
        env={**procs.base_env, config.ENV_SERVER_URL: urls["b"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "permission denied" in refused.stderr, refused.stderr
