"""What a test or a benchmark started and left running, found by the mark in its environment.

Every environment :func:`harness.isolation.isolated_env` makes carries
:data:`~harness.isolation.OWNER_ENV`, naming this harness process. A process keeps
the environment it was started with, as the kernel shows it, whatever it does
afterwards, and passes it on: a detached supervisor, its template and the replicas
forked from it, Postgres, a relayed command's child all carry the mark. So what is
left when a block of tests ends is found by it, even when no state file lists its pid
any more.

Identity is psutil's (pid plus the creation time counted from boot), which a step of
the wall clock leaves alone; a :class:`~asyncrpc.supervise.pids.ProcessRef` compares
creation times on the wall clock, so after a step it takes a running process for gone.
Only the processes of this checkout's Python, or of a program installed under it
(Postgres), are looked into at all.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import psutil

from asyncrpc.runtime import config
from harness.isolation import OWNER, OWNER_ENV

#: How much of a command line a description shows.
SHOWN = 200
#: Seconds a killed process gets to be gone before that counts as a failure.
KILL_WAIT_S = 10.0


class StillRunning(RuntimeError):
    """A process outlived its SIGKILL (it hangs in the kernel); the message names it."""


def describe(process: psutil.Process) -> str:
    """``pid N: its command line`` (shortened), for a message."""
    try:
        command = " ".join(process.cmdline()).strip()
    except psutil.Error:
        command = "?"
    return f"pid {process.pid}: {command[:SHOWN]}"


def gone(process: psutil.Process) -> bool:
    """True once ``process`` has exited (a zombie has: it runs nothing and takes no signal)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _marked() -> Iterator[tuple[psutil.Process, dict[str, str]]]:
    """Every live process carrying this harness process's mark, with its environment."""
    prefix = sys.prefix + os.sep
    me = os.getpid()
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.pid == me or not cmdline or not cmdline[0].startswith(prefix):
            continue
        try:
            env = process.environ()
            if env.get(OWNER_ENV) != OWNER or process.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        yield process, env


def _of_run(process: psutil.Process, env: dict[str, str], run_dir: Path) -> bool:
    """Whether ``process`` runs for ``run_dir``: its environment or its command line says so."""
    named = env.get(config.ENV_RUN_DIR)
    if named and Path(named).resolve().is_relative_to(run_dir):
        return True
    return str(run_dir) in " ".join(process.info["cmdline"] or [])


def running(run_dir: Path | None = None, children: bool = True) -> list[psutil.Process]:
    """The live processes this harness process started (directly or not), still running.

    With ``run_dir``, only those of that run directory (or one below it). Without
    ``children``, not this process's own children: whoever started them (a
    :class:`~harness.processes.Processes`, a ``Popen``) holds them and stops them.
    """
    root = run_dir.resolve() if run_dir is not None else None
    me = os.getpid()
    found = []
    for process, env in _marked():
        if root is not None and not _of_run(process, env, root):
            continue
        try:
            if not children and process.ppid() == me:
                continue
        except psutil.Error:
            continue
        found.append(process)
    return found


def wait_gone(processes: Iterable[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` seconds for every one to exit; those still running."""
    left = [process for process in processes if not gone(process)]
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [process for process in left if not gone(process)]
    return left


def kill(processes: Iterable[psutil.Process]) -> list[str]:
    """SIGKILL each one still running, by pid, only while it is still that very process.

    Returns the descriptions of those it killed, once they are gone; :class:`StillRunning`
    when one outlives its SIGKILL by :data:`KILL_WAIT_S` seconds.
    """
    killed: dict[int, str] = {}
    targets = []
    for process in processes:
        if process.pid in killed or gone(process):
            continue
        text = describe(process)
        try:
            process.kill()  # psutil checks first that the pid is still this process's
        except psutil.NoSuchProcess:
            continue
        killed[process.pid] = text
        targets.append(process)
    still = wait_gone(targets, KILL_WAIT_S)
    if still:
        raise StillRunning(
            f"still running {KILL_WAIT_S:g}s after SIGKILL: "
            + "; ".join(describe(process) for process in still)
        )
    return list(killed.values())
