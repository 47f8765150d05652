"""`asyncrpc demo crash` refuses bad input with what is valid and exit 2, starting nothing.

In-process, through the CLI; tests/e2e/test_demo.py runs the demo itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from asyncrpc.cli import app
from asyncrpc.demo.crash import database_of
from asyncrpc.demo.scenario import killable_nodes
from asyncrpc.lesson import topology
from asyncrpc.runtime import config
from asyncrpc.supervise.rundir import RunDir

# -- bad input: clear message, exit 2, nothing started ---------------------------------


def invoke(tmp_path: Path, *args: str) -> tuple[int, str]:
    run_dir = tmp_path / "demo-run"
    result = CliRunner().invoke(
        app,
        ["demo", "crash", "--run-dir", str(run_dir), *args],
        env={config.ENV_SERVER_URL: None, "COLUMNS": "200"},
    )
    assert "Traceback" not in result.output
    assert not run_dir.exists() or RunDir(run_dir).read_state() is None
    return result.exit_code, result.output


AWAIT_CHAIN = topology.FLOWS["await-chain"]
FAN_OUT = topology.FLOWS["fan-out"]
#: A node of each flow that is not part of the other.
FAN_OUT_NODE, AWAIT_CHAIN_NODE = FAN_OUT.nodes[1], AWAIT_CHAIN.nodes[1]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--flow", "nope"], ["unknown flow 'nope'", *topology.flow_names()]),
        (["--victim", "z"], ["unknown node to kill 'z'", ", ".join(killable_nodes(AWAIT_CHAIN))]),
        (
            ["--flow", "await-chain", "--victim", FAN_OUT_NODE],
            [f"{FAN_OUT_NODE} is not part of await-chain", ", ".join(AWAIT_CHAIN.nodes)],
        ),
        (
            ["--flow", "fan-out", "--victim", AWAIT_CHAIN_NODE],
            [f"{AWAIT_CHAIN_NODE} is not part of fan-out", ", ".join(FAN_OUT.nodes)],
        ),
        (["--delay", "0"], ["--delay 0", "at least"]),
        (["--timeout", "0"], ["--timeout"]),
        (["--server-port", "0"], ["--server-port", "from 1 to 65535"]),
    ],
)
def test_bad_input_says_what_is_valid_and_exits_2(
    tmp_path: Path, args: list[str], expected: list[str]
) -> None:
    code, output = invoke(tmp_path, *args)
    assert code == 2, output
    for text in expected:
        assert text in output, output


def test_the_demo_names_the_database_of_the_server_it_kills(tmp_path: Path) -> None:
    rundir = RunDir(tmp_path)
    assert database_of(topology.POSTGRES, rundir) == tmp_path / "postgres"
    assert database_of(topology.SERVER, rundir) == tmp_path / "server.db"
