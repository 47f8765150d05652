"""The launcher commands' answers to mistakes, run in-process (no process gets started).

Each case names what was wrong and what is valid, exits 1 or 2, prints no
traceback, and leaves the run directory without a launcher.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from asyncrpc.cli import app
from asyncrpc.lesson import topology
from asyncrpc.ops.up import UpOptions, choose_server
from asyncrpc.runtime.errors import CommandError
from asyncrpc.supervise.rundir import RunDir
from harness.isolation import free_port

FLOWS = ", ".join(topology.FLOWS)
WORKERS = ", ".join(topology.NODES)


#: The CLI reads the process environment; make sure no outside server URL is picked up.
CLEAN_ENV: dict[str, str | None] = {"RESONATE_URL": None, "ASYNCRPC_GATEWAY_URL": None}


def invoke(run_dir: Path, *args: str) -> Result:
    result = CliRunner().invoke(app, [*args, "--run-dir", str(run_dir)], env=CLEAN_ENV)
    assert "Traceback" not in result.output
    assert RunDir(run_dir).read_state() is None
    return result


@pytest.mark.parametrize(
    "args",
    [["status"], ["ps"], ["call", "await-chain"], ["kill", "b"], ["start", "b"], ["ui"]],
)
def test_commands_with_nothing_running_say_so_and_how_to_start(
    tmp_path: Path, args: list[str]
) -> None:
    result = invoke(tmp_path, *args)
    assert result.exit_code == 1, result.output
    assert "nothing is running" in result.stderr
    assert "asyncrpc up" in result.stderr


def test_down_with_nothing_running_is_fine(tmp_path: Path) -> None:
    result = invoke(tmp_path, "down")
    assert result.exit_code == 0 and "Nothing was running" in result.stdout


def test_logs_with_no_logs(tmp_path: Path) -> None:
    result = invoke(tmp_path, "logs")
    assert result.exit_code == 1 and "no logs" in result.stderr


@pytest.mark.parametrize(
    ("args", "needle", "valid"),
    [
        (["up", "--detach", "await-chian"], "unknown target 'await-chian'", FLOWS),
        (["up", "--detach", "a", "--scale", "z=2"], "unknown node 'z'", WORKERS),
        (["up", "--detach", "a", "--delay", "c=1"], "not among the targets", "(a)"),
        (["call", "fan-in"], "unknown flow 'fan-in'", FLOWS),
        (["kill", "x"], "unknown node 'x'", f"server, postgres, gateway, {WORKERS}"),
        (["start", "b.0"], "bad replica", "b.1"),
        (["restart", "j"], "unknown node 'j'", f"server, postgres, gateway, {WORKERS}"),
        (["logs", "nope"], "unknown node 'nope'", f"server, postgres, gateway, {WORKERS}"),
    ],
)
def test_unknown_names_list_the_valid_ones_and_exit_2(
    tmp_path: Path, args: list[str], needle: str, valid: str
) -> None:
    result = invoke(tmp_path, *args)
    assert result.exit_code == 2, result.output
    assert needle in result.stderr
    assert valid in result.stderr


def test_a_bad_signal_name_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["kill", "b", "--signal", "HUP", "--run-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "'kill', 'term'" in result.output.lower()


@pytest.mark.parametrize("taken", ["server", "gateway", "dashboard"])
def test_a_port_in_use_is_named_with_its_holder_and_the_option(tmp_path: Path, taken: str) -> None:
    ports = {"server": free_port(), "gateway": free_port(), "dashboard": free_port()}
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", ports[taken]))
        holder.listen()
        result = invoke(
            tmp_path,
            "up",
            "--detach",
            "await-chain",
            "--server-port",
            str(ports["server"]),
            "--gateway-port",
            str(ports["gateway"]),
            "--dashboard-port",
            str(ports["dashboard"]),
        )
    assert result.exit_code == 1, result.output
    assert f"port {ports[taken]}" in result.stderr
    assert f"--{taken}-port" in result.stderr
    assert f"pid {os.getpid()}" in result.stderr
    assert not (tmp_path / "logs").exists()  # nothing was started


def test_the_dashboard_needs_a_port_of_its_own(tmp_path: Path) -> None:
    port = free_port()
    result = invoke(
        tmp_path, "up", "--detach", "a", "--server-port", str(port), "--dashboard-port", str(port)
    )
    assert result.exit_code == 1, result.output
    assert "each need a port of their own" in result.stderr
    assert not (tmp_path / "logs").exists()


def test_choose_server() -> None:
    notes: list[str] = []
    options = UpOptions(server_port=9101)
    up = {"http://up:1"}.__contains__
    assert choose_server(options, {}, notes.append, up) == ("http://127.0.0.1:9101", True)
    env = {"RESONATE_URL": "http://up:1/"}
    assert choose_server(options, env, notes.append, up) == ("http://up:1", False)
    assert notes == []
    down_env = {"RESONATE_URL": "http://down:1"}
    assert choose_server(options, down_env, notes.append, up) == ("http://127.0.0.1:9101", True)
    assert "no server answers at http://down:1" in notes[0]
    explicit = UpOptions(server_url="http://up:1")
    assert choose_server(explicit, down_env, notes.append, up) == ("http://up:1", False)
    with pytest.raises(CommandError, match="no server answers at http://down:1"):
        choose_server(UpOptions(server_url="http://down:1"), {}, notes.append, up)
