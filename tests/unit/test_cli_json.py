"""`--json` in-process: what scripts read when nothing runs, or a name or value is wrong.

With `--json` every error is one JSON object on stdout, `{"error", "exit_code"}`, and the
command exits with that code, whether the command found it (nothing running, an unknown
flow) or Click did before the command ran (a bad option value). Wrong names come with
the closest valid one. The answers of a running system are in
tests/e2e/test_cli_json.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from asyncrpc.cli import app
from asyncrpc.supervise.rundir import RunDir

CLEAN_ENV: dict[str, str | None] = {
    "RESONATE_URL": None,
    "RESONATE_TOKEN": None,
    "ASYNCRPC_GATEWAY_URL": None,
    "ASYNCRPC_SERVER_PORT": None,
    "ASYNCRPC_GATEWAY_PORT": None,
    "COLUMNS": "200",
}


def run(run_dir: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [*args, "--run-dir", str(run_dir)], env=CLEAN_ENV)
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    return result.exit_code, result.stdout, result.stderr


def json_error(run_dir: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """Run with --json; the error object it printed (the only thing on stdout)."""
    code, stdout, _ = run(run_dir, *args, "--json")
    error = json.loads(stdout)
    assert set(error) == {"error", "exit_code"}, error
    assert error["exit_code"] == code
    return code, error


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["kill", "b"], 1, "nothing is running"),
        (["start", "b"], 1, "nothing is running"),
        (["restart", "b"], 1, "nothing is running"),
        (["invoke", "await-chain"], 1, "nothing is running"),
        (["call", "await-chain", "--gateway-url", "http://127.0.0.1:1"], 3, "no gateway"),
        (["logs"], 1, "no logs"),
        (["tree", "order-42"], 1, "no server to read"),
        (["promises", "search", "*"], 1, "no server to read"),
        (["promises", "get", "order-42"], 1, "no server to read"),
        (["schedules"], 1, "no server to read"),
        (["schedules", " "], 2, "give a pattern"),
        (["invoke", "await-chian"], 2, "Did you mean 'await-chain'?"),
        (["kill", "gatewya"], 2, "Did you mean 'gateway'?"),
        (["up", "--detach", "fan-ot"], 2, "Did you mean 'fan-out'?"),
        (["up", "--detach", "c", "--scale", "cc=2"], 2, "Did you mean 'c'?"),
        (["up", "a"], 2, "give both"),
        (["demo", "crash", "--flow", "awaitchain"], 2, "Did you mean 'await-chain'?"),
        (["demo", "crash", "--victim", "gatewy"], 2, "Did you mean 'gateway'?"),
        # Click's own usage errors, found before the command runs.
        (["invoke", "await-chain", "--timeout", "nan"], 2, "above 0"),
        (["promises", "search", "*", "--state", "done"], 2, "'done' is not one of"),
        (["promises", "search", "*", "--limit", "0"], 2, "whole number from 1"),
        (["status", "--no-such-option"], 2, "No such option"),
        (["tree"], 2, "Missing argument"),
    ],
)
def test_an_error_under_json_is_one_object_with_its_exit_code(
    tmp_path: Path, args: list[str], code: int, says: str
) -> None:
    exit_code, error = json_error(tmp_path, *args)
    assert exit_code == code
    assert says in error["error"]
    assert RunDir(tmp_path).read_state() is None


def test_without_json_the_same_error_is_a_message_on_stderr(tmp_path: Path) -> None:
    code, stdout, stderr = run(tmp_path, "invoke", "await-chian")
    assert code == 2 and stdout == ""
    assert "error: unknown flow 'await-chian'. Did you mean 'await-chain'?" in stderr


def test_a_name_too_far_from_any_gets_no_guess(tmp_path: Path) -> None:
    _, error = json_error(tmp_path, "kill", "zzz")
    assert "Did you mean" not in error["error"]
    assert "Valid nodes: server, postgres, gateway, a" in error["error"]


def test_status_with_nothing_running_says_so_in_json(tmp_path: Path) -> None:
    code, stdout, stderr = run(tmp_path, "status", "--json")
    assert code == 1 and stderr == ""
    answer = json.loads(stdout)
    assert answer["running"] is False
    assert answer["run_dir"] == str(tmp_path.resolve())
    assert "nothing is running" in answer["message"]


def test_down_with_nothing_running_reports_it_in_json(tmp_path: Path) -> None:
    code, stdout, _ = run(tmp_path, "down", "--json")
    assert code == 0
    assert json.loads(stdout) == {
        "run_dir": str(tmp_path.resolve()),
        "stopped": [],
        "nothing_was_running": True,
        "cleaned": False,
    }


def test_logs_in_json_are_one_object_a_line(tmp_path: Path) -> None:
    rundir = RunDir(tmp_path)
    rundir.ensure()
    rundir.log_for("b.1").write_text('bar received 1\nwith "quotes"\n')
    rundir.log_for("c.1").write_text("baz received 1\n")

    code, stdout, _ = run(tmp_path, "logs", "--json")
    assert code == 0
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert {"replica": "b.1", "line": 'with "quotes"'} in lines
    assert {"replica": "c.1", "line": "baz received 1"} in lines
    code, stdout, _ = run(tmp_path, "logs", "b", "--json", "-n", "1")
    assert code == 0
    assert [json.loads(line) for line in stdout.splitlines()] == [
        {"replica": "b.1", "line": 'with "quotes"'}
    ]


def test_invoke_help_names_the_timeout_exit_code(tmp_path: Path) -> None:
    code, stdout, _ = run(tmp_path, "invoke", "--help")
    assert code == 0
    assert "124" in stdout and "--timeout" in stdout
