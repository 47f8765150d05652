"""The control client says a supervisor that has exited is gone, whoever holds its port.

`stranger` (in tests/conftest.py) holds a port and refuses every request;
tests/unit/test_control_client.py has the supervisor that is there but silent.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from asyncrpc.runtime.errors import NothingRunning
from asyncrpc.supervise.control_client import ControlClient
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.rundir import RunDir
from harness.isolation import free_port


@pytest.fixture
def exited() -> ProcessRef:
    """A process that ran and has ended, as a supervisor that died leaves its record."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    ref = ProcessRef.of(child.pid)
    assert ref is not None
    child.kill()
    child.wait()
    return ref


def client(url: str, supervisor: ProcessRef, tmp_path: Path) -> ControlClient:
    return ControlClient(url, "the-token", supervisor, RunDir(tmp_path))


def test_nothing_listening_and_the_supervisor_gone_is_nothing_running(
    exited: ProcessRef, tmp_path: Path
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(NothingRunning, match="has exited"):
        client(nobody, exited, tmp_path).status()


def test_another_process_on_the_port_of_a_gone_supervisor_is_nothing_running(
    stranger: str, exited: ProcessRef, tmp_path: Path
) -> None:
    with pytest.raises(NothingRunning, match="has exited"):
        client(stranger, exited, tmp_path).status()
