"""`asyncrpc up --detach` in one run directory, and everything it started, so all of it stops.

The launcher lists itself and every replica in its run directory's state file.
:class:`Launched` runs the launcher's commands on free ports with one
environment, and remembers each process it sees listed there, with psutil's
identity (pid plus creation time since boot, so neither a recycled pid nor a step
of the wall clock fools it). :meth:`Launched.stop` asks the launcher to stop with
`asyncrpc down`, then kills whatever of the run still runs: each process it
remembered, and each one carrying this harness's mark that names the run
directory (:mod:`harness.leftovers`), such as a replica started after the last look
or a template. :func:`launched` wraps it all around a fresh temporary directory and
fails when `down` left anything to kill.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.rundir import RunDir
from asyncrpc.supervise.template_client import TEMPLATE_MODULE
from harness import leftovers
from harness.isolation import free_port, isolated_env
from harness.postgres import copy_data
from harness.processes import ASYNCRPC

#: `--ready-timeout` of `up`: starting ten Python processes at once on two shared cores.
READY_TIMEOUT = "120"
#: Seconds `up --detach` may take in all (the supervisor waits for each replica in turn).
UP_TIMEOUT = 400.0
#: Seconds `down` may take before what is left is killed.
DOWN_TIMEOUT = 120.0


class LaunchFailed(RuntimeError):
    """`asyncrpc up --detach` exited with an error; the message has what it printed."""


class LeftRunning(RuntimeError):
    """`asyncrpc down` left processes of its run running; they are killed, and named here."""


@dataclass
class Launched:
    """The processes a launcher running in ``run_dir`` listed, every one seen so far."""

    run_dir: Path
    env: Mapping[str, str]
    server_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    seen: set[ProcessRef] = field(default_factory=set)
    #: Each process seen alive, held by psutil's identity rather than the wall clock's.
    handles: dict[int, psutil.Process] = field(default_factory=dict)

    @property
    def server_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}/"

    def cli(
        self, *args: str, timeout: float = 180, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`asyncrpc ARGS...` in this run's environment (``env`` added); what it started is
        remembered."""
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

    def up(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`asyncrpc up --detach ARGS` on this run's ports; :class:`LaunchFailed` unless it
        exits 0 (with everything ready)."""
        ports = ["--server-port", str(self.server_port), "--gateway-port", str(self.gateway_port)]
        if "--no-dashboard" not in args:
            ports += ["--dashboard-port", str(self.dashboard_port)]
        command = ["up", "--detach", "--ready-timeout", READY_TIMEOUT, *ports, *args]
        result = self.cli(*command, timeout=UP_TIMEOUT, env=env)
        if result.returncode != 0:
            raise LaunchFailed(
                f"asyncrpc {' '.join(command)} exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def remember(self) -> None:
        """Note the launcher, its template and every replica its state file lists now."""
        state = RunDir(self.run_dir).read_state()
        if state is None:
            return
        for ref in [state.supervisor, *(process for _, process in state.processes())]:
            if ref in self.seen:
                continue
            self.seen.add(ref)
            if ref.alive():
                self._hold(ref.pid)
                if ref == state.supervisor:
                    self._hold_template_of(ref.pid)

    def _hold(self, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            self.handles.setdefault(pid, psutil.Process(pid))

    def _hold_template_of(self, pid: int) -> None:
        """A detached supervisor is forked from the template its replicas are forked from."""
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(pid).parent()
            if parent is not None and TEMPLATE_MODULE in " ".join(parent.cmdline()):
                self.handles.setdefault(parent.pid, parent)

    def alive(self) -> list[int]:
        """The pids of the processes seen that still run."""
        pids = {ref.pid for ref in self.seen if ref.alive()}
        pids |= {pid for pid, process in self.handles.items() if not leftovers.gone(process)}
        return sorted(pids)

    def running(self) -> list[psutil.Process]:
        """What of this run still runs: the processes seen, and those its mark names."""
        found = {pid: p for pid, p in self.handles.items() if not leftovers.gone(p)}
        for process in leftovers.running(self.run_dir, children=False):
            found.setdefault(process.pid, process)
        return list(found.values())

    def stop(self) -> list[str]:
        """`asyncrpc down` while a state file is left, then SIGKILL for anything of the run
        still running; the processes it had to kill so (`down` failed to stop them).

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
                    timeout=DOWN_TIMEOUT,
                    check=False,
                )
        finally:
            left = self.running()
            for ref in self.seen:
                ref.signal(signal.SIGKILL, group=False)
            killed = leftovers.kill(left)
        return killed


@contextlib.contextmanager
def launched(
    prefix: str = "asyncrpc-run-",
    *,
    base: Path | None = None,
    postgres_data: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Launched]:
    """A :class:`Launched` over ``BASE/run`` (``env`` added to its isolated environment),
    stopped at the end, pass or fail; :class:`LeftRunning` when `down` left anything.

    ``base`` defaults to a new temporary directory named ``prefix...``, removed at the end:
    not under pytest's temporary root, which it keeps private (0700), while Postgres, run
    as another user when the tests run as root, must reach its data directory. With
    ``postgres_data`` (a stopped, prepared data directory), the run's `postgres` node
    starts on a copy of it.
    """
    made = base is None
    root = Path(tempfile.mkdtemp(prefix=prefix)) if base is None else base
    try:
        if postgres_data is not None:
            copy_data(postgres_data, root / "run" / "postgres")
        it = Launched(root / "run", isolated_env(root / "run", **(env or {})))
        try:
            yield it
        finally:
            killed = it.stop()
        if killed:
            raise LeftRunning(f"`asyncrpc down` left these running (now killed): {killed}")
    finally:
        if made:
            shutil.rmtree(root, ignore_errors=True)
