"""A detached `up`'s template, forked from the `up` command rather than spawned.

`up --detach` runs the template (:mod:`asyncrpc.entrypoints.template`) as a
program of its own: `python -m asyncrpc.entrypoints.template --supervise RUN_DIR`.
Spawned, a new interpreter would start from nothing and import again what the
command has loaded (Typer, the CLI, the supervisor's plan and run directory)
before it began on the web stack. So where forking is safe (the template's own
rule: Linux, no thread and no event loop running here), :func:`fork_program`
forks the command instead, and the child runs the module as `python -m` would,
as a process of its own in every other way: its own session, stdin from
/dev/null, stdout and stderr to the launcher's log, no descriptor of the
command's but the ones handed over, and the environment it is given.

The command waits on it through :class:`ForkedProgram`, which answers as much of
:class:`subprocess.Popen` as the wait needs (``pid``, ``poll``, ``wait``,
``terminate``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from asyncrpc.runtime.forked_child import close_descriptors, fork_child, own_session, reopen_output

#: How often :meth:`ForkedProgram.wait` looks whether the child has exited.
WAIT_POLL_S = 0.01


class ChildProcess(Protocol):
    """What `up --detach` needs of the process it started: a Popen, or a forked program."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def terminate(self) -> None: ...


class ForkedProgram:
    """A child forked by :func:`fork_program`; its exit code reads as a Popen's does."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        return self._pid

    def poll(self) -> int | None:
        """Its exit code once it has exited (negative: the signal that ended it), else None."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self._pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its code is lost
                self.returncode = 255
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Its exit code once it has exited; subprocess.TimeoutExpired after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self._pid}", timeout or 0.0)
            time.sleep(WAIT_POLL_S)
        return code

    def terminate(self) -> None:
        """SIGTERM, unless it has exited."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGTERM)


def can_fork() -> bool:
    """Whether this process may fork a program: Linux, no thread besides this one, and no
    event loop running (the child would find it running and could start none of its own)."""
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return False
    asyncio = sys.modules.get("asyncio")  # not imported: no loop runs
    return asyncio is None or asyncio._get_running_loop() is None


def fork_program(
    module: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    output: int,
    keep: Sequence[int] = (),
) -> ForkedProgram:
    """Fork a child that runs `python -m MODULE ARGS...` on what this process has imported.

    The child calls ``setsid``, reads /dev/null, writes to ``output`` (stdout and
    stderr), keeps only the descriptors in ``keep`` besides those, runs with ``env``
    as its whole environment and exits with the module's exit code. The caller
    checks :func:`can_fork` first.
    """

    def program() -> int:
        _become_program(module, args, env, output, keep)
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0

    return ForkedProgram(fork_child(program))


def _become_program(
    module: str, args: Sequence[str], env: Mapping[str, str], output: int, keep: Sequence[int]
) -> None:
    """In the fresh child: own session, /dev/null in, ``output`` out, nothing else inherited,
    and `ps` shows `python -m MODULE ARGS...`."""
    # Before the environment changes: setproctitle finds the room for a title behind the
    # process's arguments only while the environment's strings still lie there.
    import setproctitle

    setproctitle.setproctitle(" ".join([sys.executable, "-m", module, *args]))
    sys.argv = [module, *args]
    own_session()
    # Above the standard three: `up` started with one of them closed may have the log there.
    output = fcntl.fcntl(output, fcntl.F_DUPFD, 3)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    close_descriptors(keep)
    for fd in keep:
        if fd > 2:
            os.set_inheritable(fd, True)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    reopen_output()
    os.environ.clear()
    os.environ.update(env)
