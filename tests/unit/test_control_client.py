"""The control client names a supervisor that is there but does not answer.

`stranger` (in tests/conftest.py) holds the port and refuses every request;
tests/e2e/test_control_client.py has the supervisor that has exited.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from asyncrpc.runtime.errors import LauncherError, NothingRunning
from asyncrpc.supervise.control_client import ControlClient
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.rundir import RunDir


def test_a_running_supervisor_that_does_not_answer_is_named(stranger: str, tmp_path: Path) -> None:
    alive = ProcessRef.of(os.getpid())
    assert alive is not None
    with pytest.raises(LauncherError, match=f"pid {os.getpid()}.* did not answer") as raised:
        ControlClient(stranger, "the-token", alive, RunDir(tmp_path)).status()
    assert not isinstance(raised.value, NothingRunning)
