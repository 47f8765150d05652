"""The control client names why a supervisor does not answer: gone, or there but silent."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncrpc.runtime.errors import LauncherError, NothingRunning
from asyncrpc.supervise.control_client import ControlClient
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.rundir import RunDir
from harness.isolation import free_port


class Refuses(http.server.BaseHTTPRequestHandler):
    """Whatever holds the port now: it answers every request 401, as to a stranger's token."""

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stranger() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuses)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


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


def test_a_running_supervisor_that_does_not_answer_is_named(stranger: str, tmp_path: Path) -> None:
    alive = ProcessRef.of(os.getpid())
    assert alive is not None
    with pytest.raises(LauncherError, match=f"pid {os.getpid()}.* did not answer") as raised:
        client(stranger, alive, tmp_path).status()
    assert not isinstance(raised.value, NothingRunning)
