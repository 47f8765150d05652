"""The control client names why a supervisor does not answer; the server checks its token."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncrpc.runtime.errors import LauncherError, NothingRunning
from asyncrpc.supervise.control_client import TOKEN_HEADER, UNAUTHORIZED, ControlClient
from asyncrpc.supervise.control_server import make_app
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.plan import Plan
from asyncrpc.supervise.rundir import RunDir
from asyncrpc.supervise.supervisor import Supervisor
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


# -- the control server's token check ------------------------------------------------------


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The control server over a supervisor that runs nothing, with the token `the-token`."""
    run_dir = tmp_path_factory.mktemp("control")
    plan = Plan(run_dir=run_dir, server_url="http://127.0.0.1:1", embedded_server=True)
    app = make_app(Supervisor(plan, {}), "the-token", on_down=lambda: None)
    with TestClient(app, base_url="http://127.0.0.1:1") as client:
        yield client


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(token=st.binary(max_size=64).filter(lambda raw: b"\r" not in raw and b"\n" not in raw))
def test_any_token_bytes_get_401_never_500(control: TestClient, token: bytes) -> None:
    """A token that is not ASCII (UTF-8, Latin-1, anything) is a wrong token."""
    answer = control.get("/status", headers={TOKEN_HEADER: token})
    right = token.strip(b" \t") == b"the-token"  # HTTP drops the spaces around a value
    assert answer.status_code == (200 if right else UNAUTHORIZED), answer.text


def test_the_right_token_and_a_non_ascii_one(control: TestClient) -> None:
    assert control.get("/status", headers={TOKEN_HEADER: "the-token"}).status_code == 200
    for token in ("thé-token".encode(), "the-token\u2028".encode(), b"\xff\xfe"):
        assert control.get("/status", headers={TOKEN_HEADER: token}).status_code == UNAUTHORIZED
    assert control.get("/status").status_code == UNAUTHORIZED
