"""A call made while the server is down is either started for real or said to be NOT started.

Real processes: `asyncrpc up gateway a b c --detach` around the embedded
server (`asyncrpc server`) and around Postgres with resonate.sql (skipped
without ASYNCRPC_RESONATE_SQL), the gateway allowed 5 s to get a start
confirmed (ASYNCRPC_START_TIMEOUT). With the server killed:

- an outage shorter than `invoke`'s bound: the call goes on asking, the
  server comes back, and the call answers 3;
- an outage longer than it: `status` reports the server unreachable and the
  gateway's 503 with its reason, `invoke` exits 3 saying the invocation was
  NOT started, the server does not know the id, and sending the same id
  again after the server is back answers 3.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from asyncrpc.lesson import topology
from asyncrpc.ops.call import EXIT_NOT_STARTED
from asyncrpc.postgres.schema import RESONATE_SQL_ENV
from asyncrpc.runtime import config
from harness.launched import Launched, launched
from harness.processes import ASYNCRPC
from harness.waiting import http_status, wait_until

#: The gateway's bound on getting one start confirmed.
GATEWAY_START_TIMEOUT = 5.0
#: `invoke`'s bound in the long outage: shorter than the outage.
SHORT_PATIENCE = 3.0
#: Seconds the server stays down in the short outage (well within invoke's default 30 s).
SHORT_OUTAGE = 4.0


@dataclass
class System:
    server: str  # the node that is the server: `server` or `postgres`
    launched: Launched

    @property
    def gateway_url(self) -> str:
        return self.launched.gateway_url

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.launched.cli(*args, timeout=timeout)

    def invoke(self, invocation_id: str, *options: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*ASYNCRPC, "invoke", "await-chain", "--id", invocation_id, "--json", *options],
            env=dict(self.launched.env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def kill_server(self) -> None:
        killed = self.cli("kill", self.server)
        assert killed.returncode == 0, killed.stdout + killed.stderr

    def start_server(self) -> None:
        started = self.cli("start", self.server)
        assert started.returncode == 0, started.stdout + started.stderr

    def health_in_status(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        """`asyncrpc status --json`'s health, once ``wanted`` holds for it."""
        status = self.cli("status", "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        health = json.loads(status.stdout)["health"]
        return health if wanted(health) else None

    def healthy(self) -> bool:
        return http_status(f"{self.gateway_url}/healthz", timeout=2.0) == 200


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def system(request: pytest.FixtureRequest) -> Iterator[System]:
    extra: dict[str, str] = {config.ENV_START_TIMEOUT: f"{GATEWAY_START_TIMEOUT:g}"}
    options: list[str] = []
    data = None
    if request.param == "postgres":
        schema = os.environ.get(RESONATE_SQL_ENV)
        if not schema:
            pytest.skip(f"{RESONATE_SQL_ENV} is not set (it names resonate.sql)")
        extra[RESONATE_SQL_ENV] = schema
        options = ["--server", "postgres"]
        data = request.getfixturevalue("postgres_data")
    with launched("asyncrpc-outage-", postgres_data=data, env=extra) as run:
        run.up("gateway", "a", "b", "c", *options, "--no-dashboard")
        yield System(topology.POSTGRES if options else topology.SERVER, run)


def test_a_call_made_during_a_short_outage_completes(system: System) -> None:
    system.kill_server()
    call = system.invoke(f"short-{system.server}", "--start-timeout", "60")
    try:
        time.sleep(SHORT_OUTAGE)
        assert call.poll() is None, call.communicate()  # still trying, not given up
        system.start_server()
        stdout, stderr = call.communicate(timeout=120)
    finally:
        if call.poll() is None:
            call.kill()
            call.communicate()
    assert call.returncode == 0, stdout + stderr
    assert json.loads(stdout)["result"] == 3


def test_a_call_outlasting_its_bound_is_not_started_and_can_be_sent_again(
    system: System,
) -> None:
    invocation_id = f"long-{system.server}"
    system.kill_server()
    # `status` says the server is down, and the gateway why it answers 503.
    health = wait_until(
        lambda: system.health_in_status(lambda health: not health["gateway"]["ok"]),
        20,
        "status to report the gateway unhealthy",
        poll=0.5,
    )
    assert not health["server"]["ok"], health
    assert "cannot reach the Resonate server" in health["gateway"]["detail"], health
    began = time.monotonic()
    call = system.invoke(invocation_id, "--start-timeout", f"{SHORT_PATIENCE:g}")
    stdout, stderr = call.communicate(timeout=120)
    took = time.monotonic() - began

    assert call.returncode == EXIT_NOT_STARTED, stdout + stderr
    # Under --json the error is one JSON object on stdout.
    error = json.loads(stdout)
    assert error["exit_code"] == EXIT_NOT_STARTED, error
    assert f"invocation {invocation_id} was NOT started" in error["error"], error
    assert "Send the same id again" in error["error"], error
    # One gateway answer (its 5 s bound) past invoke's own 3 s, plus start-up: not minutes.
    assert took < GATEWAY_START_TIMEOUT + SHORT_PATIENCE + 15, took

    system.start_server()
    wait_until(system.healthy, 60, "the gateway reaching the server again", poll=0.2)
    # Nothing runs under the id: the server does not know it (asked through the gateway).
    assert http_status(f"{system.gateway_url}/invocations/{invocation_id}", timeout=10) == 404

    again = system.cli("invoke", "await-chain", "--id", invocation_id, "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["result"] == 3
