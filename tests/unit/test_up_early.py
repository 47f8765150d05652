"""Which command lines fork the early template, and the handover it waits for.

`up --detach` (or `-d`) on Linux with the template on forks it; anything else
(another command, `--help`, a flag after `--`, ASYNCRPC_TEMPLATE=0, another
platform) does not. The handover carries the run directory, the environment and
the two descriptors (the log and the lock) across a socketpair: the template finds
the same open files, its lock's number in its environment; a command that closes
the socketpair without a handover leaves it nothing to run.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from asyncrpc.ops import up_early
from asyncrpc.runtime import config

LINUX = "linux"


@pytest.mark.parametrize(
    ("args", "env", "platform", "forks"),
    [
        (["up", "--detach"], {}, LINUX, True),
        (["up", "await-chain", "-d", "--scale", "h=2"], {}, LINUX, True),
        (["up", "--detach"], {config.ENV_TEMPLATE: "1"}, LINUX, True),
        (["up"], {}, LINUX, False),  # foreground: the supervisor runs in the command
        (["status", "--detach"], {}, LINUX, False),
        (["up", "--detach", "--help"], {}, LINUX, False),
        (["up", "--", "--detach"], {}, LINUX, False),
        (["up", "--detach"], {config.ENV_TEMPLATE: "0"}, LINUX, False),
        (["up", "--detach"], {}, "darwin", False),
        ([], {}, LINUX, False),
    ],
)
def test_only_a_detached_up_with_the_template_forks_it_early(
    args: list[str], env: dict[str, str], platform: str, forks: bool
) -> None:
    assert up_early.wanted(args, env, platform) is forks


def same_file(a: int, b: int) -> bool:
    first, second = os.fstat(a), os.fstat(b)
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def never_signalled(pid: int, number: int) -> None:
    raise AssertionError(f"the test's own process {pid} was to be signalled ({number})")


def test_a_failed_handover_stops_and_reaps_the_early_template_by_its_pid(tmp_path: Path) -> None:
    command_end, template_end = socket.socketpair()
    template_end.close()  # the template is gone: the handover's write fails
    calls: list[tuple[str, int, int]] = []
    early = up_early.EarlyTemplate(
        4_000_000,  # only the fakes below see it: nothing is signalled for real
        command_end,
        lambda pid, number: calls.append(("signal", pid, number)),
        lambda pid, options: calls.append(("reap", pid, options)),
    )
    log = os.open(tmp_path / "launcher.log", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert early.hand_over(str(tmp_path), {"PATH": "/bin"}, log, log) is None
    finally:
        os.close(log)
    assert calls == [("signal", 4_000_000, signal.SIGKILL), ("reap", 4_000_000, 0)]
    assert early.done and command_end.fileno() == -1
    early.stop()  # stopped once: nothing more is signalled
    assert len(calls) == 2


def test_the_handover_carries_the_run_and_the_open_log_and_lock(tmp_path: Path) -> None:
    command_end, template_end = socket.socketpair()
    # The whole line fits the socket's buffer, so the handover is written before its other
    # end is read, on this one thread; and it is longer than one read (``receive`` loops).
    command_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    template_end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    env = {"PATH": "/bin", "BIG": "x" * 100_000}
    log = os.open(tmp_path / "launcher.log", os.O_WRONLY | os.O_CREAT, 0o600)
    lock = os.open(tmp_path / "supervisor.lock", os.O_RDWR | os.O_CREAT, 0o600)
    # This process stands in for the early template: nothing may signal it.
    early = up_early.EarlyTemplate(os.getpid(), command_end, never_signalled, never_signalled)
    handed: up_early.Handover | None = None
    try:
        command_end.settimeout(30)  # a handover that cannot be written fails, not hangs
        child = early.hand_over(str(tmp_path), env, log, lock)
        assert child is not None and child.pid == os.getpid()
        assert early.done and command_end.fileno() == -1
        handed = up_early.receive(template_end)
        assert handed is not None
        assert handed.run_dir == str(tmp_path) and handed.env == env
        assert same_file(handed.log, log) and same_file(handed.lock, lock)
        assert handed.log not in (log, lock) and handed.lock not in (log, lock)
    finally:
        for fd in (log, lock) + ((handed.log, handed.lock) if handed else ()):
            os.close(fd)
        template_end.close()


class ReadAtOnce(socket.socket):
    """The command's end of a socketpair whose template reads the whole handover and closes
    its end the moment the line is out: the fastest template there can be."""

    template_end: socket.socket
    handed: up_early.Handover | None = None

    def sendmsg(self, *args: Any, **kwargs: Any) -> int:
        sent = super().sendmsg(*args, **kwargs)
        self.handed = up_early.receive(self.template_end)
        return sent


def test_a_template_that_reads_the_handover_and_closes_at_once_is_handed_its_run(
    tmp_path: Path,
) -> None:
    plain, template_end = socket.socketpair()
    command_end = ReadAtOnce(fileno=plain.detach())
    command_end.template_end = template_end
    log = os.open(tmp_path / "launcher.log", os.O_WRONLY | os.O_CREAT, 0o600)
    early = up_early.EarlyTemplate(os.getpid(), command_end, never_signalled, never_signalled)
    try:
        child = early.hand_over(str(tmp_path), {"PATH": "/bin"}, log, log)
        assert child is not None and early.done
        assert template_end.fileno() == -1  # the template had closed its end before the return
        assert command_end.handed is not None and command_end.handed.run_dir == str(tmp_path)
    finally:
        if command_end.handed is not None:
            os.close(command_end.handed.log)
            os.close(command_end.handed.lock)
        os.close(log)
        template_end.close()


def test_no_handover_when_the_command_closes_the_socketpair() -> None:
    command_end, template_end = socket.socketpair()
    command_end.close()
    assert up_early.receive(template_end) is None
