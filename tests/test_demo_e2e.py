"""End-to-end: `asyncrpc demo crash` really crashes a process mid-flow and the flow recovers.

Each demo runs as a subprocess on free ports with its own run directory; the
test remembers every process the demo's launcher lists and stops all of them
afterwards, pass or fail. The await chain's and the fan-out's default-victim
demos run in tests/test_tree_e2e.py, which also reads their call graphs with
`asyncrpc tree` while the flow waits and after it finished; here: the detached
chain's and the `--victim server` demo, and every kind of bad input.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from asyncrpc import config, topology
from asyncrpc.cli import app
from asyncrpc.demo.scenario import default_victim, valid_victims
from asyncrpc.launcher.pids import ProcessRef
from asyncrpc.launcher.rundir import RunDir
from tests.support import ASYNCRPC, free_port

#: Short, so the suite stays fast; long enough to see the flow wait.
DELAY = "2"
TTL = "2"
#: Generous: shared two-core machines are slow to start five Python processes at once.
READY_TIMEOUT = "120"


def clean_env(run_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESONATE_", "ASYNCRPC_"))}
    env[config.ENV_RUN_DIR] = str(run_dir)
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "200"
    return env


@dataclass
class DemoRun:
    """`asyncrpc demo crash ...` as a subprocess, and every process its launcher started."""

    tmp: Path
    server_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    seen: set[ProcessRef] = field(default_factory=set)

    @property
    def run_dir(self) -> Path:
        return self.tmp / "demo-run"

    @property
    def output(self) -> Path:
        return self.tmp / "demo.out"

    def start(self, *args: str) -> None:
        command = [*ASYNCRPC, "demo", "crash", "--run-dir", str(self.run_dir)]
        command += ["--server-port", str(self.server_port)]
        command += ["--gateway-port", str(self.gateway_port)]
        command += ["--delay", DELAY, "--ttl", TTL, "--ready-timeout", READY_TIMEOUT, *args]
        with self.output.open("wb") as sink:
            self.process = subprocess.Popen(
                command,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=clean_env(self.tmp / "run"),
            )

    def text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def remember(self) -> None:
        """Note the launcher and every process it lists, for the final clean-up."""
        state = RunDir(self.run_dir).read_state() or {}
        for node in state.get("nodes", []):
            if node.get("pid") and node.get("pid_started"):
                self.seen.add(ProcessRef(node["pid"], node["pid_started"]))
        if isinstance(state.get("launcher"), dict):
            self.seen.add(ProcessRef.from_json(state["launcher"]))

    def wait_for(self, pattern: str, timeout: float = 240) -> re.Match[str]:
        """Wait until the demo's output matches ``pattern``; fail if it ends first."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            self.remember()
            match = re.search(pattern, self.text())
            if match:
                return match
            if self.process.poll() is not None:
                raise AssertionError(f"the demo ended before {pattern!r}:\n{self.text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} after {timeout}s:\n{self.text()}")
            time.sleep(0.05)

    def finish(self, timeout: float = 300) -> int:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            self.remember()
            if time.monotonic() > deadline:
                raise AssertionError(f"the demo still runs after {timeout}s:\n{self.text()}")
            time.sleep(0.1)
        return self.process.returncode

    def alive(self) -> list[int]:
        return [ref.pid for ref in self.seen if ref.alive()]

    def cleanup(self) -> None:
        """Stop the demo (it stops what it started), then anything still left, by pid."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if RunDir(self.run_dir).state_file.exists():
            subprocess.run(
                [*ASYNCRPC, "down", "--run-dir", str(self.run_dir)],
                env=clean_env(self.tmp / "run"),
                capture_output=True,
                timeout=120,
                check=False,
            )
        for ref in self.seen:
            ref.signal(signal.SIGKILL, group=False)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoRun]:
    run = DemoRun(tmp_path)
    try:
        yield run
    finally:
        run.cleanup()


def assert_recovered(run: DemoRun, code: int, victim: str) -> str:
    """The demo exited 0 with the timeline and result 3, and left nothing running."""
    text = run.text()
    assert code == 0, text
    assert re.search(r"as invocation \S+", text), text
    assert "Timeline (from the call's start)" in text, text
    assert re.search(rf"\+\d+\.\d\ds  {re.escape(victim)} killed \(kill -9\)", text), text
    assert re.search(r"\+\d+\.\d\ds  (replacement \S+|server restarted\S*) .*ready", text), text
    assert re.search(r"\+\d+\.\d\ds  completed: every step settled", text), text
    assert re.search(r"result 3\b", text), text
    assert "Recovered:" in text and "Stopped everything the demo started" in text, text
    assert run.seen, "the test never saw the demo's processes"
    assert run.alive() == [], f"left running: {run.alive()}"
    assert RunDir(run.run_dir).read_state() is None
    return text


@pytest.mark.parametrize(
    ("flow", "victim"), [("detached-chain", None), ("await-chain", topology.SERVER)]
)
def test_demo_crash_recovers(demo: DemoRun, flow: str, victim: str | None) -> None:
    found = topology.find_flow(flow)
    assert found is not None
    demo.start("--flow", flow, *(["--victim", victim] if victim else []))
    text = assert_recovered(demo, demo.finish(), victim or default_victim(found))
    if victim == topology.SERVER:
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
        (["--victim", "z"], ["unknown victim 'z'", ", ".join(valid_victims(AWAIT_CHAIN))]),
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
        (["--server-port", "0"], ["--server-port", "greater than or equal to 1"]),
    ],
)
def test_bad_input_says_what_is_valid_and_exits_2(
    tmp_path: Path, args: list[str], expected: list[str]
) -> None:
    code, output = invoke(tmp_path, *args)
    assert code == 2, output
    for text in expected:
        assert text in output, output
