"""The crash demo started from the page: `asyncrpc demo crash` as a child, its output kept.

The demo is a script that starts a system of its own (its own run directory
and free ports, so the system the page shows is never disturbed), crashes it
and narrates; running the very command a person runs keeps one implementation,
and a child process can be stopped (SIGTERM: the demo stops all it started)
without touching the supervisor. One demo runs at a time; its lines are kept
for the page, which gets them through the event feed, with the replicas of
the demo's own system while it runs (read from that system's supervisor), so
the page shows the killed node go down and come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncrpc.demo.scenario import Scenario
from asyncrpc.runtime.errors import CommandError
from asyncrpc.supervise.control_client import connect
from asyncrpc.supervise.rundir import RunDir

#: Lines of the demo's output kept for the page.
MAX_LINES = 2000
#: Seconds the demo gets to stop what it started after SIGTERM.
STOP_GRACE = 60.0
#: Seconds between two looks at the demo's own system while it runs.
WATCH_INTERVAL = 0.2


class DemoState(enum.StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    RECOVERED = "recovered"  # exit 0: the flow recovered with the right result
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class DemoCommand:
    """How to spell `asyncrpc demo crash` here: the program, the run directory, free ports."""

    program: tuple[str, ...]
    run_dir: Path
    free_port: Callable[[], int]
    #: The server the demo starts, as the run's: none (embedded) or `--server postgres
    #: --schema PATH`, so the demo can kill the kind of server the page offers.
    server_args: tuple[str, ...] = ()

    def argv(self, scenario: Scenario) -> list[str]:
        return [
            *self.program,
            "demo",
            "crash",
            "--flow",
            scenario.flow.name,
            "--victim",
            scenario.killed_node,
            "--delay",
            f"{scenario.delay:g}",
            "--run-dir",
            str(self.run_dir),
            "--server-port",
            str(self.free_port()),
            "--gateway-port",
            str(self.free_port()),
            *self.server_args,
        ]


def replicas_of(run_dir: Path) -> list[dict[str, Any]]:
    """The replicas of the system started in ``run_dir``; none while nothing answers there."""
    try:
        nodes: list[dict[str, Any]] = connect(RunDir(run_dir)).status().to_json()["nodes"]
        return nodes
    except CommandError:
        return []


class DemoRun:
    """At most one running demo, and the output of the last one."""

    def __init__(self, command: DemoCommand, env: Mapping[str, str]) -> None:
        self._command = command
        self._env = {**env, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "110"}
        self._env["PYTHONUNBUFFERED"] = "1"
        self.state = DemoState.IDLE
        self.scenario: Scenario | None = None
        self.lines: list[str] = []
        self.exit_code: int | None = None
        #: The replicas of the demo's own system, while it runs.
        self.replicas: list[dict[str, Any]] = []
        self._process: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.state is DemoState.RUNNING

    async def start(self, scenario: Scenario) -> None:
        """Start the demo; CommandError while another one runs."""
        if self.running:
            raise CommandError("a crash demo is already running; stop it or wait for its end.")
        self.scenario, self.lines, self.exit_code = scenario, [], None
        self._process = await asyncio.create_subprocess_exec(
            *self._command.argv(scenario),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self._env,
            start_new_session=True,
        )
        self.state = DemoState.RUNNING
        self._pump = asyncio.create_task(self._read(self._process))
        self._watcher = asyncio.create_task(self._watch(self._process))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip())
            del self.lines[:-MAX_LINES]
        self.exit_code = await process.wait()
        if self.state is DemoState.RUNNING:
            self.state = DemoState.RECOVERED if self.exit_code == 0 else DemoState.FAILED

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        while self.running and self._process is process:
            self.replicas = await asyncio.to_thread(replicas_of, self._command.run_dir)
            await asyncio.sleep(WATCH_INTERVAL)
        if self._process is process:
            self.replicas = []

    async def stop(self) -> None:
        """Ask a running demo to stop (it stops all it started); wait for it."""
        process = self._process
        if not self.running or process is None:
            return
        self.state = DemoState.STOPPED
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        for task in (self._pump, self._watcher):
            if task is not None:
                with contextlib.suppress(Exception):
                    await task

    def to_json(self) -> dict[str, Any]:
        scenario = self.scenario
        return {
            "state": str(self.state),
            "flow": scenario.flow.name if scenario else None,
            "victim": scenario.killed_node if scenario else None,
            "delay": scenario.delay if scenario else None,
            "exit_code": self.exit_code,
            "lines": self.lines,
            "replicas": self.replicas,
        }
