"""The supervisor's refusals that start nothing: an external server, a node already full.

tests/e2e/test_launcher_supervisor.py drives it with stand-in child processes.
"""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from asyncrpc.runtime.errors import CommandError, UsageError
from asyncrpc.runtime.numbers import MAX_REPLICAS
from asyncrpc.supervise.control_client import TOKEN_HEADER
from asyncrpc.supervise.control_server import make_app
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.plan import ReplicaSpec
from asyncrpc.supervise.status import Phase
from asyncrpc.supervise.supervisor import Supervisor
from asyncrpc.supervise.targets import NodeSelector
from tests.support.supervisor import make_plan, refs_of, run


def test_an_external_server_is_never_signalled(tmp_path: Path, reaper: list[ProcessRef]) -> None:
    plan = make_plan(tmp_path)
    plan.replicas = [ReplicaSpec("gateway")]
    plan.embedded_server = False
    supervisor = Supervisor(plan, dict(os.environ))

    async def scenario() -> None:
        with pytest.raises(CommandError, match="not started by this supervisor"):
            await supervisor.kill(NodeSelector("server"))
        with pytest.raises(CommandError, match="not started by this supervisor"):
            await supervisor.start(NodeSelector("server"))

    run(scenario, supervisor, reaper)


def test_add_stops_at_the_most_replicas_a_node_may_have(tmp_path: Path) -> None:
    full = [ReplicaSpec("b", number) for number in range(1, MAX_REPLICAS + 1)]
    supervisor = Supervisor(make_plan(tmp_path, *full), {})

    with pytest.raises(UsageError, match=f"b.{MAX_REPLICAS}, the most"):
        asyncio.run(supervisor.start(NodeSelector("b"), add=True))
    assert len(supervisor.replicas) == 2 + MAX_REPLICAS  # nothing was added, nothing started
    assert refs_of(supervisor) == []


def test_an_unexpected_failure_is_answered_with_its_words() -> None:
    """The control server answers what went wrong, which the command prints."""

    class Failing:
        async def start(self, *args: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    app = make_app(Failing(), "token", on_down=lambda: None)  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as http:
        answer = http.post("/start", json={"node": "server"}, headers={TOKEN_HEADER: "token"})
    assert answer.status_code == 500
    assert answer.json()["error"] == (
        "the supervisor failed: OSError: [Errno 28] No space left on device"
    )


def test_the_plan_is_ready_only_once_the_supervisor_serves_what_it_sets_up_meanwhile(
    tmp_path: Path,
) -> None:
    """The boot asks for its replicas first; ready waits for the dashboard and control server."""
    plan = make_plan(tmp_path)
    plan.replicas = []  # nothing to start: what is left is the wait for `ready_after`
    supervisor = Supervisor(plan, {})

    async def scenario() -> tuple[Phase, Phase]:
        served = asyncio.Event()
        boot = asyncio.create_task(supervisor.boot(ready_after=served))
        await asyncio.sleep(0.05)
        before = supervisor.phase
        served.set()
        await boot
        return before, supervisor.phase

    assert asyncio.run(scenario()) == (Phase.STARTING, Phase.READY)
    assert refs_of(supervisor) == []
