"""The `asyncrpc` launcher run as a user runs it, one command a subprocess, and all it started.

:class:`Launcher` is a :class:`~harness.launched.Launched` whose commands are
checked by the tests themselves (an `up` may be meant to fail), and which also
runs a foreground `asyncrpc up` in the background. :meth:`Launcher.cleanup` stops
those, then everything of the run (`asyncrpc down`, then a kill of whatever is
left), so nothing stays running. The ``launcher`` fixture is in
tests/e2e/conftest.py.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncrpc.supervise.rundir import RunDir
from harness.launched import READY_TIMEOUT, Launched
from harness.processes import ASYNCRPC

__all__ = ["READY_TIMEOUT", "Launcher"]


@dataclass
class Launcher(Launched):
    """Runs `asyncrpc ...` against one run directory and remembers every process it saw."""

    background: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def rundir(self) -> RunDir:
        return RunDir(self.run_dir)

    def run(
        self, *args: str, timeout: float = 300, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.cli(*args, timeout=timeout, env=env)

    def ports(self) -> list[str]:
        return ["--server-port", str(self.server_port), "--gateway-port", str(self.gateway_port)]

    def up(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`asyncrpc up --detach ARGS`, whatever it answers (the test checks it)."""
        return self.run(
            "up", "--detach", *self.ports(), "--ready-timeout", READY_TIMEOUT, *args, env=env
        )

    def status(self) -> dict[str, Any]:
        result = self.run("status", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]

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
        self.stop()
