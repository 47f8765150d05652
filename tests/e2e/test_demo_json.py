"""End-to-end: `asyncrpc demo crash --json`: the narration on stderr, the outcome on stdout.

A script runs the crash demo for its verdict: stdout holds one JSON object (the flow,
the node killed, the invocation, its result, whether it recovered, and the timeline),
while the person watching still reads the narration on stderr.
"""

from __future__ import annotations

import json
import subprocess

from asyncrpc.demo.scenario import default_killed_node
from asyncrpc.lesson import topology
from harness.processes import ASYNCRPC
from tests.support.demo_run import DELAY, READY_TIMEOUT, TTL, DemoRun


def test_demo_crash_json_prints_the_outcome_and_narrates_on_stderr(demo: DemoRun) -> None:
    flow = topology.FLOWS["await-chain"]
    stdout, stderr = demo.tmp / "demo.json", demo.tmp / "demo.err"
    command = [*ASYNCRPC, "demo", "crash", "--flow", flow.name, "--json"]
    command += ["--run-dir", str(demo.run_dir), "--server-port", str(demo.server_port)]
    command += ["--gateway-port", str(demo.gateway_port), "--delay", DELAY, "--ttl", TTL]
    command += ["--ready-timeout", READY_TIMEOUT]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        demo.process = subprocess.Popen(
            command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=demo.env()
        )
    code = demo.finish()
    narration = stderr.read_text()
    assert code == 0, narration
    outcome = json.loads(stdout.read_text())
    killed = default_killed_node(flow)
    assert outcome["flow"] == flow.name and outcome["victim"] == killed
    assert (outcome["result"], outcome["expected"], outcome["recovered"]) == (3, 3, True)
    assert outcome["invocation_id"].startswith(flow.default_id)
    events = [entry["event"] for entry in outcome["timeline"]]
    assert f"{killed} killed (kill -9)" in events
    assert "completed: every step settled" in events
    moments = [entry["at"] for entry in outcome["timeline"]]
    assert moments == sorted(moments)
    assert "Recovered:" in narration and "Timeline (from the call's start)" in narration
    assert demo.alive() == []
