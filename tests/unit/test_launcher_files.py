"""The run directory is this user's alone: 0700, and every file the launcher writes 0600.

It holds the control server's token and every replica's output, so neither a
permissive umask nor a run directory left by an older version may open it up.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncrpc.runtime.errors import CommandError
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.rundir import RunDir, RunDirBusy, read_holder
from asyncrpc.supervise.status import LauncherSnapshot, Phase, RunState


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that lets group and others read (the common 022 would, too)."""
    previous = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(previous)


def a_state() -> RunState:
    snapshot = LauncherSnapshot(
        phase=Phase.READY,
        error=None,
        run_dir="/x",
        server_url="http://127.0.0.1:1",
        server_embedded=True,
        gateway_url=None,
        respawn=None,
        replicas=[],
    )
    return RunState(ProcessRef(1, "1.0"), "http://127.0.0.1:2", "a-token", snapshot)


@pytest.mark.usefixtures("open_umask")
def test_a_new_run_directory_and_its_files_are_private(tmp_path: Path) -> None:
    rundir = RunDir(tmp_path / "run")
    rundir.write_state(a_state())
    rundir.write_plan(json.dumps({"plan": 1}))
    with rundir.open_log("b.1") as log:
        log.write(b"hello\n")

    assert mode(rundir.path) == 0o700
    assert mode(rundir.logs) == 0o700
    assert mode(rundir.state_file) == 0o600
    assert mode(rundir.plan_file) == 0o600
    assert mode(rundir.log_for("b.1")) == 0o600
    assert rundir.read_state() == a_state()


@pytest.mark.usefixtures("open_umask")
def test_an_older_open_run_directory_is_narrowed_and_logs_keep_their_lines(
    tmp_path: Path,
) -> None:
    rundir = RunDir(tmp_path / "run")
    rundir.logs.mkdir(parents=True)
    rundir.path.chmod(0o755)
    rundir.logs.chmod(0o755)
    old_log = rundir.log_for("b.1")
    old_log.write_text("from before\n")
    old_log.chmod(0o644)

    with rundir.open_log("b.1") as log:
        log.write(b"from now\n")

    assert (mode(rundir.path), mode(rundir.logs), mode(old_log)) == (0o700, 0o700, 0o600)
    assert old_log.read_text() == "from before\nfrom now\n"


def test_one_claim_of_a_run_directory_at_a_time_naming_its_holder(tmp_path: Path) -> None:
    rundir = RunDir(tmp_path / "run")
    first = rundir.claim()
    with pytest.raises(RunDirBusy, match=rf"another `asyncrpc up` \(pid {os.getpid()}\)"):
        rundir.claim()
    first.note_holder(4242)  # the supervisor it was handed to says who holds it now
    with pytest.raises(RunDirBusy, match=r"\(pid 4242\)"):
        rundir.claim()
    first.release()
    rundir.claim().release()
    assert stat.S_IMODE(rundir.lock_file.stat().st_mode) == 0o600


def test_a_refused_claim_waits_for_the_holder_to_write_its_pid(tmp_path: Path) -> None:
    """An `up` refused between the holder's lock and its pid still names the holder."""
    lock_file = tmp_path / "lock"
    fd = os.open(lock_file, os.O_CREAT | os.O_RDWR, 0o600)
    naps: list[float] = []

    def holder_writes_on_the_third_look(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            os.pwrite(fd, b"4242\n", 0)

    try:
        assert read_holder(fd, 5.0, sleep=holder_writes_on_the_third_look) == "4242"
        assert len(naps) == 2
        os.ftruncate(fd, 0)
        assert read_holder(fd, 0.0) == "unknown"  # nobody wrote: said so, not a guess
    finally:
        os.close(fd)


def test_a_shorter_pid_leaves_no_trace_of_the_longer_one(tmp_path: Path) -> None:
    rundir = RunDir(tmp_path / "run")
    lock = rundir.claim()
    lock.note_holder(1234567)
    lock.note_holder(42)
    assert rundir.lock_file.read_text() == "42\n"
    lock.release()


def test_a_descriptor_that_is_not_the_lock_is_refused(tmp_path: Path) -> None:
    rundir = RunDir(tmp_path / "run")
    rundir.claim().release()
    other = os.open(tmp_path / "other", os.O_CREAT | os.O_RDWR)
    try:
        with pytest.raises(CommandError, match="is not"):
            rundir.adopt(other)
    finally:
        os.close(other)
