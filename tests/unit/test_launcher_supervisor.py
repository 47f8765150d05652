"""The supervisor's refusals that start nothing: an external server, a node already full.

tests/e2e/test_launcher_supervisor.py drives it with stand-in child processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from asyncrpc.runtime.errors import CommandError, UsageError
from asyncrpc.runtime.local_http import status_of
from asyncrpc.runtime.numbers import MAX_REPLICAS
from asyncrpc.supervise.control_client import TOKEN_HEADER
from asyncrpc.supervise.control_server import make_app
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.plan import ASYNCRPC_PROGRAM, ReplicaSpec
from asyncrpc.supervise.status import Phase
from asyncrpc.supervise.supervisor import Supervisor
from asyncrpc.supervise.supervisor_process import run_supervisor
from asyncrpc.supervise.targets import NodeSelector
from harness.isolation import free_port
from tests.support.loop_turns import loop_turns
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


def test_the_loop_runs_while_the_control_server_is_built(tmp_path: Path) -> None:
    """The app is built in a worker thread: the loop meanwhile notices readiness and asks on."""
    plan = make_plan(tmp_path)
    plan.replicas = []  # nothing to start: the start waits only for what the process serves
    ticks: list[float] = []
    built: list[float] = []
    stops: list[Callable[[], None]] = []

    def slow_app(supervisor: Supervisor, token: str, on_down: Callable[[], None]) -> FastAPI:
        built.append(time.monotonic())
        time.sleep(0.3)  # as the first FastAPI app a process builds does
        built.append(time.monotonic())
        stops.append(on_down)
        return make_app(supervisor, token, on_down)

    async def scenario() -> None:
        async with loop_turns() as turns:
            await run_supervisor(
                plan, {}, on_ready=lambda snapshot: stops[0](), control_app=slow_app
            )
        ticks.extend(turns)

    asyncio.run(scenario())
    assert len(stops) == 1
    during = [at for at in ticks if built[0] <= at <= built[1]]
    assert len(during) >= 10, f"the loop ran {len(during)} times during a 0.3 s build"
    assert plan.rundir.read_state() is None  # stopped and cleaned up


def test_a_control_server_that_cannot_be_built_stops_the_start(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    plan.replicas = []

    def broken(supervisor: Supervisor, token: str, on_down: Callable[[], None]) -> FastAPI:
        raise RuntimeError("no app today")

    with pytest.raises(RuntimeError, match="no app today"):
        asyncio.run(run_supervisor(plan, {}, control_app=broken))
    assert plan.rundir.read_state() is None


def test_the_replicas_are_all_asked_for_before_any_fork_is_answered(tmp_path: Path) -> None:
    """A template answers a node's fork before the gateway's, whose modules it may still be
    loading: the supervisor sends every request at once, in order, not one per answer."""
    asked: list[str] = []
    everyone = asyncio.Event()

    class Template:
        async def fork(self, args: list[str], *rest: object) -> object:
            asked.append(args[1])
            if len(asked) == 3:
                everyone.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(everyone.wait(), 2.0)
            raise CommandError(f"{args[1]} is not forked in a unit test")

        async def close(self) -> None:
            pass

    plan = make_plan(tmp_path, ReplicaSpec("a"), ReplicaSpec("b"))
    plan.program = ASYNCRPC_PROGRAM
    plan.replicas = plan.replicas[1:]  # the gateway and two nodes: what follows the server
    plan.embedded_server = False
    supervisor = Supervisor(plan, {}, template=Template())  # type: ignore[arg-type]

    with pytest.raises(CommandError) as failed:
        asyncio.run(supervisor.boot())
    assert asked == ["gateway", "a", "b"]
    assert all(f"{name} is not forked" in str(failed.value) for name in asked)
    assert refs_of(supervisor) == []


def test_a_health_check_reads_the_status_or_none_when_nothing_answers_in_time() -> None:
    """Readiness is one GET on a connection of its own: the status line decides."""

    async def scenario() -> list[int | None]:
        answers = {
            "/healthz": b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            "/busy": b"HTTP/1.1 503 Service Unavailable\r\n\r\n",
            "/garbage": b"hello\r\n",
        }
        seen: list[bytes] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            line = await reader.readline()
            seen.append(line)
            path = line.split()[1].decode()
            if path == "/silent":
                await asyncio.sleep(0.5)
            writer.write(answers[path])
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        closed = free_port()
        base = f"http://127.0.0.1:{port}"
        async with server:
            results = [
                await status_of(f"{base}/healthz", 1.0),
                await status_of(f"{base}/busy", 1.0),
                await status_of(f"{base}/garbage", 1.0),
                await status_of(f"{base}/silent", 0.1),
                await status_of(f"http://127.0.0.1:{closed}/healthz", 1.0),
                await status_of("http://127.0.0.1:99999/healthz", 1.0),
            ]
        assert seen[0] == b"GET /healthz HTTP/1.0\r\n"
        return results

    assert asyncio.run(scenario()) == [200, 503, None, None, None, None]
