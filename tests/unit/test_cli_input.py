"""The command line reads numbers strictly, prints what was typed literally, and has the
design's names: `invoke` (with `call` as its alias), `--version` and shell completion.

Everything here runs in-process; tests/e2e/test_cli_input.py runs the installed script for
completion.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
from typer.testing import CliRunner

from asyncrpc.cli import app
from asyncrpc.runtime.numbers import MAX_REPLICAS
from asyncrpc.supervise.rundir import RunDir

CLEAN_ENV: dict[str, str | None] = {
    "RESONATE_URL": None,
    "ASYNCRPC_GATEWAY_URL": None,
    "ASYNCRPC_SERVER_PORT": None,
    "ASYNCRPC_GATEWAY_PORT": None,
}


def run(*args: str, run_dir: Path | None = None) -> tuple[int, str, str]:
    extra = ["--run-dir", str(run_dir)] if run_dir is not None else []
    result = CliRunner().invoke(app, [*args, *extra], env=CLEAN_ENV)
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    return result.exit_code, result.stdout, result.stderr


def said(text: str) -> str:
    """A message as one line, without the box Typer draws around usage errors."""
    return " ".join(text.replace("│", " ").split())


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["kill", "b.²"], "whole number from 1 to 16"),  # a superscript 2
        (["start", "b.٣"], "whole number from 1 to 16"),  # an Arabic-Indic 3
        (["logs", f"b.{MAX_REPLICAS + 1}"], "whole number from 1 to 16"),
        (["restart", "b." + "9" * 5000], "whole number from 1 to 16"),
        (["up", "--detach", "b", "--scale", "b=²"], "whole number from 1 to 16"),
        (["up", "--detach", "b", "--scale", f"b={MAX_REPLICAS + 1}"], "from 1 to 16"),
        (["up", "--detach", "c", "--delay", "c=\uff15"], "digits 0-9"),  # a fullwidth 5
        (["up", "--detach", "c", "--delay", "c=nan"], "number of seconds"),
        (["up", "--detach", "c", "--delay", "c=inf"], "number of seconds"),
        (["up", "--detach", "c", "--delay", "c=1e400"], "number of seconds"),
        (["up", "--detach", "--ttl", "nan"], "above 0"),
        (["up", "--detach", "--respawn", "-1"], "number of seconds"),
        (["up", "--detach", "--ready-timeout", "inf"], "number of seconds"),
        (["up", "--detach", "--server-port", "\uff15" * 4], "from 1 to 65535"),  # fullwidth
        (["up", "--detach", "--gateway-port", "70000"], "from 1 to 65535"),
        (["invoke", "await-chain", "--timeout", "nan"], "above 0"),
        (["call", "await-chain", "--timeout", "1e9"], "up to 86400"),
        (["start", "b", "--delay", "-1"], "number of seconds"),
        (["logs", "-n", "-1"], "whole number from 0"),
        (["logs", "-n", "\uff11"], "whole number from 0"),  # a fullwidth 1
        (["demo", "crash", "--delay", "inf"], "number of seconds"),
    ],
)
def test_a_bad_number_is_exit_2_with_what_is_valid(
    tmp_path: Path, args: list[str], says: str
) -> None:
    code, _, stderr = run(*args, run_dir=tmp_path)

    assert code == 2, stderr
    assert says in said(stderr)
    assert RunDir(tmp_path).read_state() is None


@pytest.mark.parametrize(
    "args",
    [
        ["node", "b", "--ttl", "nan"],
        ["node", "gateway", "--port", "\uff15"],  # a fullwidth 5
        ["server", "--port", "0"],
    ],
)
def test_the_process_commands_read_numbers_strictly_too(args: list[str]) -> None:
    code, _, stderr = run(*args)

    assert code == 2
    assert "is not valid" in said(stderr)


def test_markup_in_a_name_prints_literally(tmp_path: Path) -> None:
    code, _, stderr = run("kill", "[bold]x[/bold]", run_dir=tmp_path)

    assert code == 2
    assert "unknown node '[bold]x[/bold]'" in stderr


def test_markup_in_the_run_directory_prints_literally(tmp_path: Path) -> None:
    odd = tmp_path / "[red]run"
    code, stdout, _ = run("down", run_dir=odd)

    assert code == 0
    assert "[red]run" in stdout


def test_invoke_is_the_command_and_call_its_alias() -> None:
    code, stdout, _ = run("--help")
    assert code == 0
    assert "invoke" in stdout and "call" in stdout and "Same as asyncrpc invoke" in stdout

    invoke_help = run("invoke", "--help")[1]
    call_help = run("call", "--help")[1]
    assert "--timeout" in invoke_help and "--timeout" in call_help
    assert "asyncrpc invoke await-chain" in invoke_help


def test_invoke_with_nothing_running_says_how_to_start(tmp_path: Path) -> None:
    code, _, stderr = run("invoke", "await-chain", run_dir=tmp_path)

    assert code == 1
    assert "nothing is running" in stderr


def test_version_comes_from_the_package_metadata() -> None:
    code, stdout, _ = run("--version")

    assert code == 0
    assert stdout.strip() == f"asyncrpc {metadata.version('asyncrpc')}"


def test_logs_n_0_prints_nothing_and_n_1_the_last_line(tmp_path: Path) -> None:
    rundir = RunDir(tmp_path)
    for name in ("b.1", "c.1"):
        with rundir.open_log(name) as log:
            log.write(f"first of {name}\nlast of {name}\n".encode())

    assert run("logs", "-n", "0", run_dir=tmp_path)[:2] == (0, "")
    assert run("logs", "b.1", "-n", "0", run_dir=tmp_path)[:2] == (0, "")
    assert run("logs", "b.1", "-n", "1", run_dir=tmp_path)[1] == "last of b.1\n"
    assert run("logs", "b.1", run_dir=tmp_path)[1] == "first of b.1\nlast of b.1\n"
