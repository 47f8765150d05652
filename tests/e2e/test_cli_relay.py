"""Short commands run by the running system's template answer as when they run on their own.

A system starts with `up --detach`; the same commands run relayed and with
``ASYNCRPC_RELAY=0`` (in their own process), and what each prints and exits
with is compared. tests/unit/test_cli_relay.py checks which run directory a
command names and when a command is not relayed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncrpc.runtime import config
from asyncrpc.supervise import command_relay
from harness.isolation import free_port, isolated_env
from harness.launched import Launched

ASYNCRPC = [sys.executable, "-m", "asyncrpc"]


def run(env: dict[str, str], *args: str, relay: bool = True) -> subprocess.CompletedProcess[str]:
    extra = {} if relay else {command_relay.ENV_RELAY: "0"}
    return subprocess.run(
        [*ASYNCRPC, *args],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def system(tmp_path: Path) -> Iterator[dict[str, str]]:
    run_dir = tmp_path / "run"
    env = isolated_env(run_dir, COLUMNS="200")
    launched = Launched(run_dir, env)
    try:
        ports = ["--server-port", str(free_port()), "--gateway-port", str(free_port())]
        up = run(env, "up", "--detach", "await-chain", *ports, "--no-dashboard")
        launched.remember()
        assert up.returncode == 0, up.stdout + up.stderr
        assert (run_dir / command_relay.SOCKET_NAME).exists()
        yield env
    finally:
        launched.stop()


def without_times(text: str) -> str:
    """Output with what changes from one run to the next (uptimes, durations, ids) blanked."""
    text = re.sub(r"\b\d+(\.\d+)?s\b", "Ns", text)
    return re.sub(r"await-chain-[0-9a-f]+", "await-chain-ID", text)


def test_relayed_commands_answer_as_run_on_their_own(system: dict[str, str]) -> None:
    env = system
    for args in (
        ["status"],
        ["status", "--json"],
        ["kill", "nosuch"],  # an unknown node: exit 2 and a message
        ["invoke", "await-chain", "--id", "relay-1"],
        ["invoke", "await-chain", "--id", "relay-1"],  # re-attached
    ):
        relayed, alone = run(env, *args), run(env, *args, relay=False)
        assert relayed.returncode == alone.returncode, args
        if "--json" not in args:
            assert without_times(relayed.stdout) == without_times(alone.stdout), args
        assert without_times(relayed.stderr) == without_times(alone.stderr), args
    assert "result: 3" in run(env, "invoke", "await-chain").stdout


def test_a_relayed_command_loads_no_cli_of_its_own(system: dict[str, str]) -> None:
    """Its process imports no Typer: the template's child runs the command."""
    command = [sys.executable, "-X", "importtime", "-m", "asyncrpc", "status"]

    def imports(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    relayed = imports(system)
    alone = imports({**system, command_relay.ENV_RELAY: "0"})
    assert relayed.returncode == alone.returncode == 0
    assert "| typer" not in relayed.stderr and "| rich" not in relayed.stderr
    assert "| typer" in alone.stderr


def test_down_removes_the_socket_and_commands_run_on_their_own(system: dict[str, str]) -> None:
    env = system
    run_dir = Path(env[config.ENV_RUN_DIR])
    down = run(env, "down")
    assert down.returncode == 0, down.stderr
    assert not (run_dir / command_relay.SOCKET_NAME).exists()
    relayed, alone = run(env, "status"), run(env, "status", relay=False)
    assert (relayed.returncode, relayed.stdout) == (alone.returncode, alone.stdout)
