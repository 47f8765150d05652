"""End-to-end: `asyncrpc demo crash` really crashes a process mid-flow and the flow recovers.

Each demo runs as a subprocess on free ports with its own run directory; the
test remembers every process the demo's launcher lists and stops all of them
afterwards, pass or fail. The await chain's and the fan-out's demos (each
killing its default node) run in tests/test_tree_e2e.py, which also reads their call graphs with
`asyncrpc tree` while the flow waits and after it finished; here: the detached
chain's and the `--victim server` demo, and every kind of bad input.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from asyncrpc.cli import app
from asyncrpc.demo.crash import database_of
from asyncrpc.demo.scenario import default_killed_node, killable_nodes
from asyncrpc.lesson import topology
from asyncrpc.runtime import config
from asyncrpc.supervise.rundir import RunDir
from tests.demo_run import DemoRun, assert_recovered


@pytest.mark.parametrize(
    ("flow", "killed_node"), [("detached-chain", None), ("await-chain", topology.SERVER)]
)
def test_demo_crash_recovers(demo: DemoRun, flow: str, killed_node: str | None) -> None:
    found = topology.find_flow(flow)
    assert found is not None
    demo.start("--flow", flow, *(["--victim", killed_node] if killed_node else []))
    text = assert_recovered(demo, demo.finish(), killed_node or default_killed_node(found))
    if killed_node == topology.SERVER:
        assert "Restarting the server on its database" in text, text
    else:
        last = topology.NODES[found.nodes[-1]].function
        assert f"caller received {last}'s result 3" in text, text


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
