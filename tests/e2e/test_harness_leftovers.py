"""The harness finds and kills what a test left running, by the mark in its environment.

A process started with an environment of ``isolated_env`` carries this pytest
process's mark, and so do the processes it starts; one that no state file lists
(an orphan whose parent has exited) is found all the same, and a `Launched` run
kills it at its end and says `down` left it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from harness import leftovers
from harness.isolation import OWNER_ENV, isolated_env
from harness.launched import Launched, LeftRunning, launched

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
#: Starts the sleeper in a session of its own, prints its pid and exits: an orphan is left.
ORPHANING = (
    "import subprocess\n"
    f"child = subprocess.Popen({SLEEPER!r}, start_new_session=True,\n"
    "    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "print(child.pid)\n"
)


def orphan(env: dict[str, str]) -> psutil.Process:
    """A sleeper with ``env`` whose parent has exited, as a replica outliving its supervisor."""
    done = subprocess.run(
        [sys.executable, "-c", ORPHANING], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return psutil.Process(int(done.stdout))


def test_a_process_is_found_by_its_mark_and_its_run_directory(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    marked = subprocess.Popen(SLEEPER, env=isolated_env(run_dir))
    unmarked = subprocess.Popen(SLEEPER, env={k: v for k, v in os.environ.items()})
    assert OWNER_ENV not in os.environ
    try:
        assert [p.pid for p in leftovers.running(run_dir)] == [marked.pid]
        assert leftovers.running(tmp_path / "elsewhere") == []
        # This process's own children are the business of whoever holds their Popen.
        assert leftovers.running(run_dir, children=False) == []
        [killed] = leftovers.kill(leftovers.running(run_dir))
        assert killed.startswith(f"pid {marked.pid}: ") and "time.sleep(120)" in killed
        assert marked.wait(timeout=10) < 0
        assert unmarked.poll() is None  # not ours to kill: it carries no mark
    finally:
        for process in (marked, unmarked):
            process.kill()
            process.wait()


def test_a_run_that_down_left_running_is_killed_and_reported(tmp_path: Path) -> None:
    run = Launched(tmp_path / "run", isolated_env(tmp_path / "run"))
    left = orphan(dict(run.env))
    try:
        assert left.ppid() != os.getpid()
        assert run.alive() == []  # no state file ever listed it
        [killed] = run.stop()
        assert killed.startswith(f"pid {left.pid}: ")
        assert leftovers.gone(left)
    finally:
        leftovers.kill([left])


def test_the_launched_block_fails_when_down_left_something(tmp_path: Path) -> None:
    left_by_down = pytest.raises(LeftRunning, match=r"left these running \(now killed\)")
    with left_by_down, launched(base=tmp_path) as run:
        left = orphan(dict(run.env))
    assert leftovers.gone(left)
