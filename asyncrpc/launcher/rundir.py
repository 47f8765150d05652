"""The run directory: where the supervisor keeps its state file, its plan, logs and database.

One supervisor per run directory (``config.run_dir(env)``, `.asyncrpc/` under the
current directory unless ASYNCRPC_RUN_DIR says otherwise). Layout:

- ``launcher.json``: written by the running supervisor on every change
  (:class:`~asyncrpc.launcher.status.RunState`): its own pid, the control
  server's address and token, the phase (starting / ready / failed / stopping)
  and every replica it started with pid and start time. Removed on a clean
  stop. Other commands read it to find the supervisor.
- ``plan.json``: what a detached supervisor was asked to run.
- ``logs/<name>.log``: each replica's output (``server``, ``gateway``, ``b.1``...),
  appended across restarts; ``logs/launcher.log`` is a detached supervisor's own.
- ``server.db``: the embedded server's database, kept between runs.
- ``postgres/``: the `postgres` node's data directory (`up --server postgres`), kept too.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from asyncrpc.launcher.status import RunState

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

    @property
    def postgres_data(self) -> Path:
        return self.path / "postgres"

    def log_for(self, name: str) -> Path:
        """The log of the replica ``name`` (`b.1`), or of the detached supervisor."""
        return self.logs / f"{name}.log"

    def ensure(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)

    def read_state(self) -> RunState | None:
        """The supervisor's state, or None when there is none (or it is unreadable)."""
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        return RunState.from_json(data)

    def write_state(self, state: RunState) -> None:
        """Replace the state file atomically; only this user may read it (it holds a token)."""
        self.ensure()
        tmp = self.state_file.with_name(f".launcher.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(state.to_json(), handle, indent=1)
        os.replace(tmp, self.state_file)

    def clear_state(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()

    def log_names(self) -> list[str]:
        """Names of every replica with a log file here (without the supervisor's own)."""
        if not self.logs.is_dir():
            return []
        return sorted(p.stem for p in self.logs.glob("*.log") if p.stem != LAUNCHER_LOG)
