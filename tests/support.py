"""Real processes for end-to-end tests: free ports, start, wait, always stop.

Every process a test starts goes through a :class:`Processes` (the ``procs``
fixture), which stops all of them at teardown, even when the test failed.
Processes run in their own session so a kill reaches their children too, and
only the pids started here are ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from asyncrpc import config

ASYNCRPC = [sys.executable, "-m", "asyncrpc"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def isolated_env(run_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """This environment without the developer's RESONATE_* / ASYNCRPC_* settings, unbuffered.

    A spawned process then talks only to what the test started; ``run_dir``
    becomes its run directory, ``extra`` is added last.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESONATE_", "ASYNCRPC_"))}
    env["PYTHONUNBUFFERED"] = "1"
    if run_dir is not None:
        env[config.ENV_RUN_DIR] = str(run_dir)
    return env | extra


def wait_until[T](predicate: Callable[[], T], timeout: float, what: str, poll: float = 0.05) -> T:
    """Poll ``predicate`` every ``poll`` s until it is truthy; else fail saying ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(poll)


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Process:
    """One started process and the file its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_for_output(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait until the output matches ``pattern`` (a regex); fail if the process exits."""

        def check() -> re.Match[str] | None:
            match = re.search(pattern, self.output())
            if match is None and not self.alive():
                raise AssertionError(
                    f"{self.name} exited ({self.popen.returncode}) before printing "
                    f"{pattern!r}:\n{self.output()[-3000:]}"
                )
            return match

        return wait_until(check, timeout, f"{self.name} to print {pattern!r}")  # type: ignore[return-value]

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


@dataclass
class Processes:
    """Starts processes for one test and stops every one of them afterwards."""

    log_dir: Path
    base_env: Mapping[str, str]
    started: list[Process] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: Mapping[str, str] | None = None) -> Process:
        environment = {**self.base_env, **(env or {})}
        log_path = self.log_dir / f"{name}-{len(self.started)}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
                start_new_session=True,
            )
        process = Process(name, popen, log_path)
        self.started.append(process)
        return process

    def start_server(
        self, db: str = ":memory:", port: int | None = None, extra: tuple[str, ...] = ()
    ) -> tuple[Process, str]:
        """Start `asyncrpc server` and wait until it answers its readiness check."""
        port = port or free_port()
        process = self.start(
            "server", [*ASYNCRPC, "server", "--port", str(port), "--db", db, *extra]
        )
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: http_ok(f"{url}/healthz") or _raise_if_dead(process),
            20,
            "the server to be ready",
        )
        return process, url

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.kill(signal.SIGTERM if process.alive() else signal.SIGKILL)


def _raise_if_dead(process: Process) -> bool:
    if not process.alive():
        raise AssertionError(f"{process.name} exited early:\n{process.output()[-3000:]}")
    return False


def write_older_server_database(path: Path) -> None:
    """A database as an older asyncrpc server left it: a log of requests, no format recorded."""
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE log (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, request BLOB);"
        'INSERT INTO log VALUES (1, 5, \'{"kind": "promise.create"}\');'
    )
    connection.close()
