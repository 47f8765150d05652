"""The control client names a supervisor that is there but does not answer; the control server
checks its token, whatever bytes a request sends as one.

`stranger` (in tests/conftest.py) holds the port and refuses every request;
tests/e2e/test_control_client.py has the supervisor that has exited.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncrpc.runtime.errors import CommandError, NothingRunning
from asyncrpc.supervise.control_client import TOKEN_HEADER, UNAUTHORIZED, ControlClient
from asyncrpc.supervise.control_server import make_app
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.plan import Plan
from asyncrpc.supervise.rundir import RunDir
from asyncrpc.supervise.supervisor import Supervisor


def test_a_running_supervisor_that_does_not_answer_is_named(stranger: str, tmp_path: Path) -> None:
    alive = ProcessRef.of(os.getpid())
    assert alive is not None
    with pytest.raises(CommandError, match=f"pid {os.getpid()}.* did not answer") as raised:
        ControlClient(stranger, "the-token", alive, RunDir(tmp_path)).status()
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
