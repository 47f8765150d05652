"""`down` stops what a supervisor that died left running, found through its state file.

tests/unit/test_launcher_status.py has the launcher's records and plain functions.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from asyncrpc.ops.down import DownResult, stop_everything
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.rundir import RunDir
from asyncrpc.supervise.status import ReplicaState, RunState
from tests.support.status import replica_status, snapshot_of


def test_down_stops_what_a_dead_supervisor_left_running(tmp_path: Path) -> None:
    rundir = RunDir(tmp_path)
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        ref = ProcessRef.of(orphan.pid)
        assert ref is not None
        gone = ProcessRef(orphan.pid, "a start time no process has")  # the dead supervisor
        leftover = replica_status("a.1", ReplicaState.RUNNING, ref.pid, ref.started)
        rundir.write_state(RunState(gone, "http://127.0.0.1:1", "t", snapshot_of(leftover)))
        notes: list[str] = []
        assert stop_everything(rundir, notes.append) == DownResult(["a.1"])
        assert orphan.wait(timeout=10) is not None
        assert rundir.read_state() is None
        assert notes == []
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()
