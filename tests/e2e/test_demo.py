"""End-to-end: `asyncrpc demo crash` really crashes a process mid-flow and the flow recovers.

Each demo runs as a subprocess on free ports with its own run directory; the
test remembers every process the demo's launcher lists and stops all of them
afterwards, pass or fail. The await chain's and the fan-out's demos (each
killing its default node) run in tests/e2e/test_tree.py, which also reads their
call graphs with `asyncrpc tree` while the flow waits and after it finished;
here: the detached chain's and the `--victim server` demo.
tests/unit/test_demo.py has every kind of bad input.
"""

from __future__ import annotations

import pytest

from asyncrpc.demo.scenario import default_killed_node
from asyncrpc.lesson import topology
from tests.support.demo_run import DemoRun, assert_recovered


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
