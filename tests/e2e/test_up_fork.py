"""`up --detach` forks its template from itself: the child is a program of its own all the same.

A small driver forks :mod:`tests.support.fork_probe` with
:func:`asyncrpc.ops.up_fork.fork_program`, as `up --detach` forks the template; the
probe reports what it inherited. It runs as `python -m` would run it, in a session of
its own, reading /dev/null, writing to the log it was given, holding only the
descriptor handed to it besides its standard ones, with exactly the environment it was
given, and its exit code reaches the parent; a log that opened as descriptor 0 (`up`
started with its standard input closed) is still where it writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux only"),
]

DRIVER = r"""
import json, os, sys
from asyncrpc.ops.up_fork import can_fork, fork_program
log_path, keep_path, drop_path = sys.argv[1:4]
assert can_fork()
kept = os.open(keep_path, os.O_RDONLY | os.O_CREAT, 0o600)
dropped = os.open(drop_path, os.O_RDONLY | os.O_CREAT, 0o600)
os.environ["PROBE_NOT_HANDED"] = "leaked"
if len(sys.argv) > 4:  # started with its standard input closed: the log opens as 0
    os.close(0)
with open(log_path, "ab") as log:
    assert len(sys.argv) == 4 or log.fileno() == 0
    child = fork_program(
        "tests.support.fork_probe", ["one", "two"],
        env={"PROBE": "handed", "PATH": os.environ.get("PATH", "")},
        output=log.fileno(), keep=[kept],
    )
print(json.dumps({"pid": child.pid, "code": child.wait(timeout=60), "kept": kept,
                  "dropped": dropped, "again": child.poll()}))
"""


def test_a_forked_program_runs_as_python_m_would_with_nothing_else_inherited(
    tmp_path: Path,
) -> None:
    log = tmp_path / "launcher.log"
    log.write_bytes(b"before\n")
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(log), str(tmp_path / "kept"), str(tmp_path / "drop")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert done.returncode == 0, done.stderr
    parent = json.loads(done.stdout)
    assert parent["code"] == 7 and parent["again"] == 7
    lines = log.read_text().splitlines()
    assert lines[0] == "before"  # appended to, as the launcher's log is
    child = json.loads(lines[1])
    assert child["argv"] == ["one", "two"]
    assert child["title"] == f"{sys.executable} -m tests.support.fork_probe one two"
    assert child["own_session"]
    assert child["stdin"] == os.devnull
    assert child["fds"] == [0, 1, 2, parent["kept"]]
    assert parent["dropped"] not in child["fds"]
    assert child["probe_env"] == "handed" and child["other_env"] is None


def test_a_log_opened_where_standard_input_was_is_still_what_the_program_writes_to(
    tmp_path: Path,
) -> None:
    """`up` started with stdin closed opens the launcher's log as descriptor 0."""
    log = tmp_path / "launcher.log"
    root = Path(__file__).resolve().parents[2]
    args = [str(log), str(tmp_path / "kept"), str(tmp_path / "drop"), "stdin-closed"]
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["code"] == 7
    child = json.loads(log.read_text().splitlines()[0])
    assert child["argv"] == ["one", "two"] and child["stdin"] == os.devnull
