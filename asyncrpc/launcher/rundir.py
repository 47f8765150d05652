"""The run directory: where a launcher keeps its state file, its plan, logs and database.

One launcher per run directory (``config.run_dir(env)``, `.asyncrpc/` under the
current directory unless ASYNCRPC_RUN_DIR says otherwise). Layout:

- ``launcher.json``: written by the running launcher on every change: its own pid,
  the control API address and token, the phase (starting / ready / failed /
  stopping) and every process it started with pid and start time. Removed on a
  clean stop. Other commands read it to find the launcher.
- ``plan.json``: what a detached launcher was asked to run.
- ``logs/<name>.log``: each process's output (``server``, ``gateway``, ``b.1``...),
  appended across restarts; ``logs/launcher.log`` is a detached launcher's own.
- ``server.db``: the embedded server's database, kept between runs.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAUNCHER_LOG = "launcher"


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory, and the state file's reader and writer."""

    path: Path

    @property
    def state_file(self) -> Path:
        return self.path / "launcher.json"

    @property
    def plan_file(self) -> Path:
        return self.path / "plan.json"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def db(self) -> Path:
        return self.path / "server.db"

    def log_for(self, label: str) -> Path:
        return self.logs / f"{label}.log"

    def ensure(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)

    def read_state(self) -> dict[str, Any] | None:
        """The running launcher's state, or None when there is none (or it is unreadable)."""
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_state(self, state: dict[str, Any]) -> None:
        """Replace the state file atomically; only this user may read it (it holds a token)."""
        self.ensure()
        tmp = self.state_file.with_name(f".launcher.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(state, handle, indent=1)
        os.replace(tmp, self.state_file)

    def clear_state(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()

    def log_labels(self) -> list[str]:
        """Names of every process with a log file here (without the launcher's own)."""
        if not self.logs.is_dir():
            return []
        return sorted(p.stem for p in self.logs.glob("*.log") if p.stem != LAUNCHER_LOG)
