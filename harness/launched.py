"""What a launcher (`asyncrpc up --detach`, `asyncrpc demo crash`) started, so all of it stops.

The launcher lists itself and every replica in its run directory's state
file. :class:`Launched` remembers each one it sees there (pid and start
time, so a recycled pid is never signalled); :meth:`Launched.stop` asks the
launcher to stop with `asyncrpc down`, then kills whatever it remembered that
still runs.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.rundir import RunDir
from harness.processes import ASYNCRPC


@dataclass
class Launched:
    """The processes a launcher running in ``run_dir`` listed, every one seen so far."""

    run_dir: Path
    env: Mapping[str, str]
    seen: set[ProcessRef] = field(default_factory=set)

    def remember(self) -> None:
        """Note the launcher and every replica its state file lists now."""
        state = RunDir(self.run_dir).read_state()
        if state is not None:
            self.seen.update(process for _, process in state.processes())
            self.seen.add(state.supervisor)

    def alive(self) -> list[int]:
        return [ref.pid for ref in self.seen if ref.alive()]

    def stop(self) -> None:
        """`asyncrpc down` while a state file is left, then SIGKILL for anything still running.

        The kills happen whatever `down` does (fails, hangs past its bound, or the state file
        cannot be read), so a test's failure never leaves its processes behind.
        """
        try:
            self.remember()
            if RunDir(self.run_dir).state_file.exists():
                subprocess.run(
                    [*ASYNCRPC, "down", "--run-dir", str(self.run_dir)],
                    env=dict(self.env),
                    capture_output=True,
                    timeout=120,
                    check=False,
                )
        finally:
            for ref in self.seen:
                ref.signal(signal.SIGKILL, group=False)
