"""The supervisor and the detached launcher, driven with tiny stand-in child processes.

The stand-in is tests/support/supervisor.py's FAKE_CHILD. The end-to-end tests
with the real server and nodes are in test_launcher.py; the supervisor's
refusals that start nothing in tests/unit/test_launcher_supervisor.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asyncrpc.ops.down import stop_orphans
from asyncrpc.ops.up import UpOptions, prepare, start_detached
from asyncrpc.runtime.errors import CommandError, NothingRunning
from asyncrpc.supervise.control_client import connect
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.plan import ReplicaSpec
from asyncrpc.supervise.rundir import RunDir
from asyncrpc.supervise.status import Phase, ReplicaState, StartResult
from asyncrpc.supervise.supervisor import Supervisor
from asyncrpc.supervise.targets import NodeSelector
from harness.disk import fill
from harness.isolation import free_port, isolated_env
from harness.waiting import wait_until
from tests.support.supervisor import FAKE_PROGRAM, make_plan, refs_of, run


def states(supervisor: Supervisor) -> dict[str, ReplicaState]:
    return {status.name: status.state for status in supervisor.snapshot().replicas}


def test_boot_kill_start_and_stop(tmp_path: Path, reaper: list[ProcessRef]) -> None:
    plan = make_plan(
        tmp_path, ReplicaSpec("a"), ReplicaSpec("b", 1), ReplicaSpec("b", 2), delays={"a": 2.0}
    )
    supervisor = Supervisor(plan, dict(os.environ))

    async def scenario() -> None:
        await supervisor.boot()
        assert supervisor.phase is Phase.READY
        assert set(states(supervisor).values()) == {ReplicaState.RUNNING}
        assert all(ref.alive() for ref in refs_of(supervisor))
        assert "delay=2" in (tmp_path / "logs" / "a.1.log").read_text()

        first_b2 = supervisor.replicas["b.2"].ref
        assert await supervisor.kill(NodeSelector("b")) == ["b.1", "b.2"]
        assert states(supervisor)["b.1"] == states(supervisor)["b.2"] == ReplicaState.KILLED
        assert first_b2 is not None and not first_b2.alive()

        started = await supervisor.start(NodeSelector("b", 2))
        assert (started.started, started.already_running) == (["b.2"], [])
        b2 = supervisor.snapshot().replicas[4]
        assert started.pids == {"b.2": b2.pid}
        assert (b2.name, b2.state, b2.restarts) == ("b.2", ReplicaState.RUNNING, 1)
        assert b2.pid != first_b2.pid or b2.pid_started != first_b2.started
        assert states(supervisor)["b.1"] == ReplicaState.KILLED

        assert (await supervisor.start(NodeSelector("b"))).started == ["b.1"]
        again = await supervisor.start(NodeSelector("b"))
        assert (again.started, again.already_running) == ([], ["b.1", "b.2"])
        assert isinstance(again, StartResult) and set(again.pids) == {"b.1", "b.2"}
        assert (await supervisor.start(NodeSelector("b"), add=True)).started == ["b.3"]

        assert await supervisor.kill(NodeSelector("a"), signal.SIGTERM) == ["a.1"]
        assert states(supervisor)["a.1"] == ReplicaState.KILLED
        with pytest.raises(CommandError, match="a is not running"):
            await supervisor.kill(NodeSelector("a"))
        with pytest.raises(CommandError, match="not part of this supervisor"):
            await supervisor.kill(NodeSelector("c"))

        await supervisor.restart(NodeSelector("gateway"))
        assert supervisor.snapshot().replicas[1].restarts == 1

        all_refs = refs_of(supervisor)
        stopped = await supervisor.stop_all()
        assert stopped[-2:] == ["gateway", "server"]
        assert not any(ref.alive() for ref in all_refs)

    run(scenario, supervisor, reaper)
    assert (tmp_path / "logs" / "b.2.log").read_text().count("asyncrpc launcher: starting") == 2


def test_a_node_that_exits_at_start_fails_the_boot_and_stops_the_rest(
    tmp_path: Path, reaper: list[ProcessRef]
) -> None:
    plan = make_plan(tmp_path, ReplicaSpec("a"), ReplicaSpec("b"))
    supervisor = Supervisor(plan, {**os.environ, "FAKE_FAIL": "b"})

    async def scenario() -> None:
        with pytest.raises(CommandError) as caught:
            await supervisor.boot()
        message = str(caught.value)
        assert "b.1 exited with code 3 at start" in message
        assert "b: boom, cannot start" in message
        assert not any(ref.alive() for ref in refs_of(supervisor))

    run(scenario, supervisor, reaper)


def test_a_node_that_never_gets_ready_is_stopped(tmp_path: Path, reaper: list[ProcessRef]) -> None:
    plan = make_plan(tmp_path, ReplicaSpec("a"), ready_timeout=1.0)
    supervisor = Supervisor(plan, {**os.environ, "FAKE_HANG": "a"})

    async def scenario() -> None:
        with pytest.raises(CommandError, match=r"a\.1 was not ready after 1s") as caught:
            await supervisor.boot()
        assert "a: started with node a" in str(caught.value)
        assert not any(ref.alive() for ref in refs_of(supervisor))

    run(scenario, supervisor, reaper)


def test_start_right_after_a_kill_from_outside_starts_the_replica(
    tmp_path: Path, reaper: list[ProcessRef]
) -> None:
    """`kill -9 PID` then `asyncrpc start b` at once: the start waits for the exit's record."""
    supervisor = Supervisor(make_plan(tmp_path, ReplicaSpec("b")), dict(os.environ))

    async def scenario() -> None:
        await supervisor.boot()
        first = supervisor.replicas["b.1"].ref
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while first.alive():  # blocks the loop: the supervisor has not seen the exit yet
            assert time.monotonic() < deadline, "b.1 did not die"
            time.sleep(0.01)
        assert states(supervisor)["b.1"] == ReplicaState.RUNNING
        started = await supervisor.start(NodeSelector("b"))
        assert (started.started, started.already_running) == (["b.1"], [])
        assert states(supervisor)["b.1"] == ReplicaState.RUNNING
        second = supervisor.replicas["b.1"].ref
        assert second is not None and second.alive() and second != first

    run(scenario, supervisor, reaper)


def test_respawn_brings_a_killed_node_back(tmp_path: Path, reaper: list[ProcessRef]) -> None:
    plan = make_plan(tmp_path, ReplicaSpec("a"), respawn=0.1)
    supervisor = Supervisor(plan, dict(os.environ))

    async def scenario() -> None:
        await supervisor.boot()
        await supervisor.kill(NodeSelector("a"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while (
            supervisor.snapshot().replicas[2].restarts < 1
            or states(supervisor)["a.1"] != ReplicaState.RUNNING
        ):
            assert loop.time() < deadline, "a.1 was not respawned"
            await asyncio.sleep(0.05)

    run(scenario, supervisor, reaper)


def test_a_recycled_pid_is_never_signalled() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        real = ProcessRef.of(sleeper.pid)
        assert real is not None and real.alive()
        impostor = ProcessRef(sleeper.pid, "not-its-start-time")
        assert not impostor.alive()
        assert impostor.signal(signal.SIGKILL) is False
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not real.alive()


# -- the detached launcher and the control API, across processes -------------------------


def detached_options(*targets: str, **extra: object) -> UpOptions:
    return UpOptions(
        targets=targets,
        server_port=free_port(),
        gateway_port=free_port(),
        program=FAKE_PROGRAM,
        **extra,  # type: ignore[arg-type]
    )


def state_refs(rundir: RunDir) -> list[ProcessRef]:
    state = rundir.read_state()
    if state is None:
        return []
    return [*(process for _, process in state.processes()), state.supervisor]


def test_detached_launcher_is_controlled_from_outside(
    tmp_path: Path, reaper: list[ProcessRef]
) -> None:
    rundir = RunDir(tmp_path / "run")
    env = isolated_env()
    plan = prepare(detached_options("a", "gateway", scale=["a=2"]), env, rundir.path)
    try:
        snapshot = start_detached(plan, env)
        reaper.extend(state_refs(rundir))
        assert snapshot.phase is Phase.READY
        client = connect(rundir)
        names = [status.name for status in client.status().replicas]
        assert names == ["server", "gateway", "a.1", "a.2"]

        with pytest.raises(CommandError, match="already running"):
            prepare(detached_options("a"), env, rundir.path)

        assert client.kill("a.2") == ["a.2"]
        assert client.start("a").started == ["a.2"]
        with pytest.raises(CommandError) as caught:
            client.kill("a.9")
        assert "not part of this supervisor" in str(caught.value)

        every = state_refs(rundir)
        reaper.extend(every)
        follow_out = tmp_path / "follow.out"
        with follow_out.open("wb") as sink:
            follower = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "asyncrpc",
                    "logs",
                    "a",
                    "-f",
                    "--run-dir",
                    str(rundir.path),
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**env, "COLUMNS": "200"},
            )
        try:
            wait_until(lambda: "a.2" in follow_out.read_text(), 60, "logs -f to print")
            assert client.down() == ["a.1", "a.2", "gateway", "server"]
            assert follower.wait(timeout=60) == 0  # -f ends when the launcher stops
        finally:
            if follower.poll() is None:
                follower.kill()
                follower.wait()
        followed = follow_out.read_text()
        assert "a: started with node a" in followed
        prefixes = {line.split("|")[0].strip() for line in followed.splitlines() if "|" in line}
        assert prefixes == {"a.1", "a.2"}
        assert not any(ref.alive() for ref in every)
        assert rundir.read_state() is None
        with pytest.raises(NothingRunning, match="asyncrpc up"):
            connect(rundir)
    finally:
        reaper.extend(state_refs(rundir))
        stop_orphans(rundir)


def test_down_works_when_the_launcher_itself_died(tmp_path: Path, reaper: list[ProcessRef]) -> None:
    rundir = RunDir(tmp_path / "run")
    env = dict(os.environ)
    plan = prepare(detached_options("a"), env, rundir.path)
    try:
        start_detached(plan, env)
        every = state_refs(rundir)
        reaper.extend(every)
        launcher = every[-1]
        launcher.signal(signal.SIGKILL, group=False)
        wait_until(lambda: not launcher.alive(), 10, "the launcher to die")
        with pytest.raises(NothingRunning, match="asyncrpc down"):
            connect(rundir).status()
        with pytest.raises(CommandError, match="still run"):
            prepare(detached_options("a"), env, rundir.path)
        assert sorted(stop_orphans(rundir)) == ["a.1", "server"]
        assert not any(ref.alive() for ref in every)
    finally:
        stop_orphans(rundir)


def test_a_failed_detached_start_reports_the_node_and_leaves_nothing(
    tmp_path: Path, reaper: list[ProcessRef]
) -> None:
    rundir = RunDir(tmp_path / "run")
    env = {**os.environ, "FAKE_FAIL": "a"}
    plan = prepare(detached_options("a", "b"), env, rundir.path)
    try:
        with pytest.raises(CommandError) as caught:
            start_detached(plan, env)
        assert "a.1 exited with code 3 at start" in str(caught.value)
        assert "a: boom" in str(caught.value)
        assert rundir.read_state() is None
    finally:
        stop_orphans(rundir)


def test_start_on_a_full_disk_says_so(small_disk: Path, reaper: list[ProcessRef]) -> None:
    """`asyncrpc start server` on a full run directory: the reason, not a server error."""
    plan = make_plan(small_disk / "run")
    plan.replicas = [ReplicaSpec("server")]
    supervisor = Supervisor(plan, isolated_env(small_disk / "env"))

    async def scenario() -> None:
        await supervisor.boot()
        await supervisor.kill(NodeSelector("server"))
        log = plan.rundir.log_for("server")
        with open(log, "ab") as out:  # up to a page's end, so that the next line needs a page
            out.write(b"." * (-log.stat().st_size % 4096))
        filler = fill(small_disk)
        with pytest.raises(CommandError) as refused:
            await supervisor.start(NodeSelector("server"))
        assert "cannot start server: its log" in str(refused.value)
        assert "No space left on device" in str(refused.value)
        filler.unlink()
        assert (await supervisor.start(NodeSelector("server"))).started == ["server"]

    run(scenario, supervisor, reaper)
