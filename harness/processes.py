"""Real processes, started for a test or a benchmark run and always stopped afterwards.

Every process goes through a :class:`Processes`, which stops all of them at
the end, also when the caller failed. Each process runs in a session of its
own, so a signal reaches whatever it started too, and only the sessions
started here are ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.isolation import free_port, isolated_env
from harness.waiting import http_status, wait_until

#: How the tests and benchmarks run the product: `python -m asyncrpc ...`.
ASYNCRPC = [sys.executable, "-m", "asyncrpc"]
#: Starting ten Python processes at once on two shared cores takes a while.
READY_TIMEOUT = 120.0


class ProcessExited(RuntimeError):
    """A started process ended before it did what was waited for."""


@dataclass
class Process:
    """One started process and the file its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    #: When it was started (``time.monotonic``): start-up and recovery times count from here.
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def raise_if_exited(self, waiting_for: str = "") -> None:
        if not self.alive():
            raise ProcessExited(
                f"{self.name} exited ({self.popen.returncode}) {waiting_for}\n"
                f"{self.output()[-3000:]}"
            )

    def wait_for_output(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait until the output matches ``pattern`` (a regex); fail if the process exits."""

        def check() -> re.Match[str] | None:
            match = re.search(pattern, self.output())
            if match is None:
                self.raise_if_exited(f"before printing {pattern!r}:")
            return match

        return wait_until(check, timeout, f"{self.name} to print {pattern!r}")

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal this process's whole session (it and whatever it started)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; reaps a process that already ended."""
        self.kill(signal.SIGTERM if self.alive() else signal.SIGKILL)


@dataclass
class Server:
    """A started `asyncrpc server`, where it listens and the database it keeps."""

    process: Process
    port: int
    db: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        """True once it answers ``GET /healthz``; fails if it exited first."""
        if http_status(f"{self.url}/healthz", timeout=0.5) == 200:
            return True
        self.process.raise_if_exited("before answering /healthz:")
        return False

    def wait(self, timeout: float = READY_TIMEOUT) -> float:
        """Wait until it is ready; the seconds from its start until then."""
        wait_until(self.ready, timeout, f"the server on port {self.port} to be ready")
        return time.monotonic() - self.process.started_at


@dataclass
class Processes:
    """Starts processes and stops every one of them afterwards."""

    log_dir: Path
    base_env: Mapping[str, str]
    started: list[Process] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: Mapping[str, str] | None = None) -> Process:
        environment = {**self.base_env, **(env or {})}
        log_path = self.log_dir / f"{name}-{len(self.started)}.log"
        started_at = time.monotonic()
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
                start_new_session=True,
            )
        process = Process(name, popen, log_path, started_at)
        self.started.append(process)
        return process

    def spawn_server(
        self, db: Path | str = ":memory:", port: int | None = None, extra: tuple[str, ...] = ()
    ) -> Server:
        """`asyncrpc server` on ``port`` (default: a free one), database ``db``; not waited for."""
        port = port or free_port()
        args = [*ASYNCRPC, "server", "--port", str(port), "--db", str(db), *extra]
        return Server(self.start("server", args), port, str(db))

    def start_server(
        self, db: Path | str = ":memory:", port: int | None = None, extra: tuple[str, ...] = ()
    ) -> tuple[Process, str]:
        """`asyncrpc server`, answering its readiness check: the process and its URL."""
        server = self.spawn_server(db, port, extra)
        server.wait()
        return server.process, server.url

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Stop, when the block ends, every process started inside it."""
        first = len(self.started)
        try:
            yield
        finally:
            for process in reversed(self.started[first:]):
                process.stop()

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()


@contextlib.contextmanager
def session(log_dir: Path, base_env: Mapping[str, str] | None = None) -> Iterator[Processes]:
    """A :class:`Processes` logging to ``log_dir``; every process stops when the block ends."""
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = Processes(log_dir, base_env if base_env is not None else isolated_env(log_dir / "run"))
    try:
        yield procs
    finally:
        procs.stop_all()
