"""End-to-end: `asyncrpc tree ID` on real flows, while they wait and after they finished.

To save start-up time the flows come from `asyncrpc demo crash` runs (the await
chain's and the fan-out's, each killing its default node, so these are also
those demos' end-to-end tests) against one Resonate server this module
starts. While the node a demo kills is dead the flow cannot finish, so `tree` then
shows a pending branch; after the demo, the same server still holds the
finished graphs. While the flow waits, `tree` runs in-process (the real
command against the real server, quick enough to read the graph inside that
window); afterwards also as its own process.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from asyncrpc.cli import app
from asyncrpc.demo.scenario import default_killed_node
from asyncrpc.lesson import topology
from asyncrpc.runtime import config
from harness.isolation import isolated_env
from harness.processes import ASYNCRPC, Processes
from tests.support.demo_run import DemoRun, assert_recovered


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server (on a file database) for every flow of this module."""
    base = tmp_path_factory.mktemp("tree-server")
    procs = Processes(log_dir=base, base_env=isolated_env(base / "run", COLUMNS="200"))
    try:
        _, url = procs.start_server(db=str(base / "server.db"))
        yield url
    finally:
        procs.stop_all()


def tree(server_url: str, *args: str) -> Result:
    result = CliRunner().invoke(
        app,
        ["tree", *args, "--server-url", server_url],
        env={config.ENV_SERVER_URL: None, config.ENV_TOKEN: None, "COLUMNS": "200"},
    )
    assert "Traceback" not in result.output
    return result


def tree_json(server_url: str, invocation_id: str) -> dict[str, Any]:
    result = tree(server_url, invocation_id, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def calls(node: dict[str, Any]) -> list[dict[str, Any]]:
    """A node's children that are function calls (not durable sleeps)."""
    return [child for child in node["children"] if child["kind"] != "sleep"]


def function(node: str) -> str:
    return topology.NODES[node].function


def check_finished(flow: topology.Flow, graph: dict[str, Any]) -> None:
    """The await chain: three levels, 3 -> 2 -> 1. The fan-out: one root, two children."""
    first, *rest = flow.nodes
    assert (graph["function"], graph["state"], graph["value"]) == (function(first), "resolved", 3)
    if flow.name == "await-chain":
        (middle,) = calls(graph)
        (last,) = calls(middle)
        assert (middle["function"], middle["value"]) == (function(rest[0]), 2)
        assert (last["function"], last["value"]) == (function(rest[1]), 1)
        assert calls(last) == []
    else:
        children = {child["function"]: child for child in calls(graph)}
        assert set(children) == {function(node) for node in rest}
        for child in children.values():
            assert (child["state"], child["value"], calls(child)) == ("resolved", 1, [])
    for node in [graph, *calls(graph)]:
        assert node["group"] == topology.node_for_function(node["function"]).group
        assert node["duration_ms"] is not None


@pytest.mark.parametrize("name", ["await-chain", "fan-out"])
def test_tree_while_waiting_and_after_a_crash_demo(
    demo: DemoRun, server_url: str, name: str
) -> None:
    flow = topology.FLOWS[name]
    killed_node = default_killed_node(flow)
    demo.start("--flow", name, "--server-url", server_url)
    invocation = demo.wait_for(r"as invocation (\S+)")[1]
    demo.wait_for(rf"kill -9 {killed_node}\b")

    # The killed node is dead and its replacement not started: the flow cannot finish yet.
    waiting = tree_json(server_url, invocation)
    step = next(
        node
        for node in [waiting, *calls(waiting), *(c for n in calls(waiting) for c in calls(n))]
        if node["function"] == function(killed_node)
    )
    assert waiting["state"] == "pending" and step["state"] == "pending", waiting
    assert step["value"] is None and step["duration_ms"] is None
    text = tree(server_url, invocation)
    assert text.exit_code == 0, text.output
    assert re.search(rf"{function(killed_node)}\(\) @ \S+  pending", text.stdout), text.stdout
    assert re.search(r"resolved = 1", text.stdout), text.stdout  # a finished call is kept

    assert_recovered(demo, demo.finish(), killed_node)
    check_finished(flow, tree_json(server_url, invocation))
    # Once as a person types it: a process of its own.
    shown = subprocess.run(
        [*ASYNCRPC, "tree", invocation, "--server-url", server_url],
        env=isolated_env(demo.tmp / "run", COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    root = function(flow.nodes[0])
    group = topology.NODES[flow.nodes[0]].group
    assert re.search(rf"{root}\(\S*\) @ {group}  resolved = 3", shown.stdout), shown.stdout
    assert "pending" not in shown.stdout


def test_tree_of_an_unknown_invocation_exits_1(server_url: str) -> None:
    result = tree(server_url, "no-such-invocation")
    assert result.exit_code == 1
    assert "no invocation with id 'no-such-invocation'" in result.output


def test_demo_will_not_kill_a_server_it_did_not_start(tmp_path: Path, server_url: str) -> None:
    result = CliRunner().invoke(
        app,
        ["demo", "crash", "--victim", "server", "--server-url", server_url],
        env={config.ENV_RUN_DIR: str(tmp_path / "run"), "COLUMNS": "200"},
    )
    assert result.exit_code == 2, result.output
    assert "only kills and restarts a server it started" in result.output
