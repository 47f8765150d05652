"""The launcher's plain functions and records, without a running supervisor.

The typed snapshot and its JSON (the shape `asyncrpc status --json` prints),
following logs, and how `call` finds its gateway and invocation id.
tests/e2e/test_launcher_status.py has `down`'s fallback when the supervisor is gone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncrpc.lesson import topology
from asyncrpc.ops.call import prepare_call
from asyncrpc.ops.down import DownResult, stop_everything
from asyncrpc.runtime.errors import NothingRunning, UsageError
from asyncrpc.supervise.log_files import follow_logs, last_lines, log_files
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.rundir import RunDir
from asyncrpc.supervise.status import (
    LauncherSnapshot,
    ReplicaState,
    RunState,
)
from asyncrpc.supervise.targets import parse_node_selector
from tests.support.status import replica_status, snapshot_of

#: The keys of `asyncrpc status --json` and of each entry under "nodes"; scripts read them.
SNAPSHOT_KEYS = {
    "phase",
    "error",
    "run_dir",
    "server_url",
    "server_embedded",
    "gateway_url",
    "respawn",
    "dashboard",
    "nodes",
}
REPLICA_KEYS = {
    "name",
    "node",
    "replica",
    "group",
    "id",
    "pid",
    "pid_started",
    "state",
    "uptime",
    "restarts",
    "exit_code",
    "delay",
    "log",
}


def test_the_snapshot_json_keeps_its_shape_and_reads_back() -> None:
    snapshot = snapshot_of(
        replica_status("gateway", ReplicaState.RUNNING, 10, "1"),
        replica_status("b.1", ReplicaState.KILLED, 11, "2"),
    )
    data = snapshot.to_json()
    assert set(data) == SNAPSHOT_KEYS
    assert all(set(entry) == REPLICA_KEYS for entry in data["nodes"])
    assert [entry["state"] for entry in data["nodes"]] == ["running", "killed"]
    assert data["phase"] == "ready"
    assert LauncherSnapshot.from_json(data) == snapshot
    assert snapshot.running_nodes() == {"gateway"}
    assert snapshot.of_node("b") == snapshot.replica("b.1") == snapshot.replicas[1]


def test_a_state_file_reads_back_and_anything_else_is_none(tmp_path: Path) -> None:
    rundir = RunDir(tmp_path)
    state = RunState(ProcessRef(1, "x"), "http://127.0.0.1:1", "t", snapshot_of())
    rundir.write_state(state)
    assert rundir.read_state() == state
    rundir.state_file.write_text('{"launcher": "not a process"}')
    assert rundir.read_state() is None
    rundir.state_file.write_text("not json")
    assert rundir.read_state() is None


def test_down_with_nothing_running_says_so(tmp_path: Path) -> None:
    assert stop_everything(RunDir(tmp_path)) == DownResult([], nothing_was_running=True)


def test_logs_are_listed_in_start_order_and_followed_until_the_supervisor_stops(
    tmp_path: Path,
) -> None:
    rundir = RunDir(tmp_path)
    rundir.ensure()
    for name in ("b.2", "gateway", "b.1", "launcher"):
        rundir.log_for(name).write_text(f"{name} old\n")
    assert [name for name, _ in log_files(rundir)] == ["gateway", "b.1", "b.2"]
    b = log_files(rundir, parse_node_selector("b"))
    assert [name for name, _ in b] == ["b.1", "b.2"]
    assert last_lines(b, 1) == [("b.1", "b.1 old"), ("b.2", "b.2 old")]

    answers = iter([True, True, False])
    writes = iter(["b.1 new\n", "b.1 partial"])

    def sleeper(seconds: float) -> None:
        with rundir.log_for("b.1").open("a") as log:
            log.write(next(writes))

    batches = list(follow_logs(rundir, parse_node_selector("b"), lambda: next(answers), sleeper))
    assert batches == [[], [("b.1", "b.1 new")], [("b.1", "b.1 partial")]]


def test_a_call_checks_its_flow_and_timeout(tmp_path: Path) -> None:
    rundir = RunDir(tmp_path)
    with pytest.raises(
        UsageError,
        match=r"unknown flow 'fan-in'\. Did you mean 'fan-out'\? Valid flows: await-chain",
    ):
        prepare_call(
            "fan-in", invocation_id=None, timeout=5, gateway_url=None, env={}, rundir=rundir
        )
    with pytest.raises(UsageError, match="--timeout"):
        prepare_call(
            "await-chain", invocation_id=None, timeout=0, gateway_url=None, env={}, rundir=rundir
        )
    with pytest.raises(NothingRunning, match="asyncrpc up"):
        prepare_call(
            "await-chain", invocation_id=None, timeout=5, gateway_url=None, env={}, rundir=rundir
        )


def test_a_call_finds_its_gateway_and_mints_an_id(tmp_path: Path) -> None:
    env = {"ASYNCRPC_GATEWAY_URL": "http://gw:1/", "RESONATE_URL": "http://server:2"}
    fresh = prepare_call(
        "fan-out", invocation_id=None, timeout=5, gateway_url=None, env=env, rundir=RunDir(tmp_path)
    )
    assert fresh.flow == topology.find_flow("fan-out")
    assert (fresh.gateway_url, fresh.server_url, fresh.fresh) == (
        "http://gw:1",
        "http://server:2",
        True,
    )
    assert fresh.invocation_id.startswith(f"{fresh.flow.default_id}-")
    again = prepare_call(
        "await-chain",
        invocation_id="order-42",
        timeout=5,
        gateway_url="http://other:3",
        env=env,
        rundir=RunDir(tmp_path),
    )
    assert (again.invocation_id, again.fresh, again.gateway_url) == (
        "order-42",
        False,
        "http://other:3",
    )
    assert again.missing == ()
