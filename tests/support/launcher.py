"""The `asyncrpc` launcher run as a user runs it, one command a subprocess, and all it started.

:class:`Launcher` runs `asyncrpc ...` on free ports with one run directory and
remembers every process the launcher's state file ever listed, so
:meth:`Launcher.cleanup` (`asyncrpc down`, then a kill of each, checked by
pid + start time) leaves nothing running. The ``launcher`` fixture is in
tests/e2e/conftest.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncrpc.runtime import config
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.rundir import RunDir
from harness.isolation import free_port
from harness.processes import ASYNCRPC

#: Generous: these machines are shared and slow to start ten Python processes at once.
READY_TIMEOUT = "120"


@dataclass
class Launcher:
    """Runs `asyncrpc ...` against one run directory and remembers every process it saw."""

    tmp: Path
    env: dict[str, str]
    server_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    seen: list[ProcessRef] = field(default_factory=list)
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def rundir(self) -> RunDir:
        return RunDir(Path(self.env[config.ENV_RUN_DIR]))

    def run(self, *args: str, timeout: float = 300, env: dict[str, str] | None = None) -> Any:
        result = subprocess.run(
            [*ASYNCRPC, *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.remember()
        return result

    def ports(self) -> list[str]:
        return ["--server-port", str(self.server_port), "--gateway-port", str(self.gateway_port)]

    def up(self, *args: str, env: dict[str, str] | None = None) -> Any:
        return self.run(
            "up", "--detach", *self.ports(), "--ready-timeout", READY_TIMEOUT, *args, env=env
        )

    def status(self) -> dict[str, Any]:
        result = self.run("status", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def remember(self) -> None:
        """Note every process the state file lists, for the final clean-up."""
        state = self.rundir.read_state()
        if state is not None:
            self.seen += [process for _, process in state.processes()]
            self.seen.append(state.supervisor)

    def start_background(self, *args: str, output: Path) -> subprocess.Popen[bytes]:
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [*ASYNCRPC, *args], env=self.env, stdout=sink, stderr=subprocess.STDOUT
            )
        self.background.append(process)
        return process

    def cleanup(self) -> None:
        for process in self.background:
            if process.poll() is None:
                process.kill()
                process.wait()
        if self.rundir.state_file.exists():
            self.run("down", timeout=120)
        for ref in self.seen:
            ref.signal(signal.SIGKILL, group=False)
