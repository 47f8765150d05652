"""Process identity, liveness and signals come from psutil alone, never from /proc.

On a process of its own, under the ``no_proc`` fixture (tests/conftest.py):
see tests/unit/test_launcher_identity.py for why.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from asyncrpc.supervise.pids import ProcessRef
from harness.waiting import wait_until


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.mark.usefixtures("no_proc")
def test_identity_liveness_and_signals_without_proc(sleeper: subprocess.Popen[bytes]) -> None:
    ref = ProcessRef.of(sleeper.pid)
    assert ref is not None and ref.alive()
    since_boot = psutil.Process(sleeper.pid).create_time() - psutil.boot_time()
    assert ref.started == f"{since_boot:.2f}"

    impostor = ProcessRef(sleeper.pid, "another create time")
    assert not impostor.alive()
    assert impostor.signal(signal.SIGKILL) is False
    assert sleeper.poll() is None  # a pid with another create time is never signalled

    assert ref.signal(signal.SIGKILL) is True
    wait_until(lambda: not ref.alive(), 10, "the killed process to be gone")  # a zombie is gone
    sleeper.wait()
    assert ProcessRef.of(sleeper.pid) is None
    assert ref.signal(signal.SIGTERM) is False
