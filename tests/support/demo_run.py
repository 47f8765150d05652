"""`asyncrpc demo crash` as a subprocess, for the end-to-end tests that run it.

:class:`DemoRun` remembers every process the demo's launcher lists, so the
``demo`` fixture (in tests/e2e/conftest.py) stops all of them afterwards, pass or fail.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.rundir import RunDir
from harness.isolation import free_port, isolated_env
from harness.launched import Launched
from harness.processes import ASYNCRPC

#: Short, so the suite stays fast; long enough to see the flow wait.
DELAY = "2"
TTL = "2"
#: Generous: shared two-core machines are slow to start five Python processes at once.
READY_TIMEOUT = "120"


@dataclass
class DemoRun:
    """`asyncrpc demo crash ...` as a subprocess, and every process its launcher started."""

    tmp: Path
    server_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    launched: Launched = field(init=False)

    def __post_init__(self) -> None:
        self.launched = Launched(self.run_dir, self.env())

    @property
    def run_dir(self) -> Path:
        return self.tmp / "demo-run"

    @property
    def seen(self) -> set[ProcessRef]:
        """Every process the demo's launcher listed so far."""
        return self.launched.seen

    def env(self) -> dict[str, str]:
        return isolated_env(self.tmp / "run", COLUMNS="200")

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
                env=self.env(),
            )

    def text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def wait_for(self, pattern: str, timeout: float = 240) -> re.Match[str]:
        """Wait until the demo's output matches ``pattern``; fail if it ends first."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            self.launched.remember()
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
            self.launched.remember()
            if time.monotonic() > deadline:
                raise AssertionError(f"the demo still runs after {timeout}s:\n{self.text()}")
            time.sleep(0.1)
        return self.process.returncode

    def alive(self) -> list[int]:
        return self.launched.alive()

    def cleanup(self) -> None:
        """Stop the demo (it stops what it started), then anything still left, by pid."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.launched.stop()


def assert_recovered(run: DemoRun, code: int, killed_node: str) -> str:
    """The demo exited 0 with the timeline and result 3, and left nothing running."""
    text = run.text()
    assert code == 0, text
    assert re.search(r"as invocation \S+", text), text
    assert "Timeline (from the call's start)" in text, text
    assert re.search(rf"\+\d+\.\d\ds  {re.escape(killed_node)} killed \(kill -9\)", text), text
    assert re.search(r"\+\d+\.\d\ds  (replacement \S+|server restarted\S*) .*ready", text), text
    assert re.search(r"\+\d+\.\d\ds  completed: every step settled", text), text
    assert re.search(r"result 3\b", text), text
    assert "Recovered:" in text and "Stopped everything the demo started" in text, text
    assert run.seen, "the test never saw the demo's processes"
    assert run.alive() == [], f"left running: {run.alive()}"
    assert RunDir(run.run_dir).read_state() is None
    return text
