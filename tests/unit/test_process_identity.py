"""A process's identity token is its start as time since boot, which no clock step moves.

The kernel keeps a process's start as ticks since boot; the wall-clock create time
psutil gives adds the boot time, which moves with every step of the wall clock. A
token on the wall clock would change for every running replica at once after a
step, and `down` would take them all for gone and leave them running.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from asyncrpc.supervise.pids import ProcessRef, start_time


@pytest.mark.skipif(sys.platform != "linux", reason="reads the kernel's own record in /proc")
def test_the_token_is_the_kernels_ticks_since_boot() -> None:
    # /proc/PID/stat: the fields after the command's closing parenthesis; starttime is
    # field 22 of the whole line, the 20th after it.
    after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(after_name[19])
    since_boot = ticks / os.sysconf("SC_CLK_TCK")
    token = start_time(os.getpid())
    assert token is not None
    assert float(token) == pytest.approx(since_boot, abs=0.011)


def test_a_live_process_is_itself_and_a_different_start_is_not() -> None:
    me = ProcessRef.of(os.getpid())
    assert me is not None and me.alive()
    assert not ProcessRef(os.getpid(), f"{float(me.started) + 1:.2f}").alive()
