"""`up --detach`'s template, forked as soon as the command line says `up --detach`.

The template's imports (the web stack, then the SDK) are the longest stretch of
`up --detach`. Forked once Typer has parsed the options and the plan is written
(:mod:`asyncrpc.ops.up_fork`), the template would begin them a tenth of a second
after the command started. So the `asyncrpc` program, before it imports any of the
CLI, reads its arguments alone (:func:`wanted`) and forks the template's process at
once (:func:`start`): it loads the web stack on one core while the command parses
its options, takes the run directory's lock and prepares the plan on the other.
It then waits for the command to hand it its run (:meth:`EarlyTemplate.hand_over`):
the run directory, the environment, the launcher's log and the lock, one JSON line
over a socketpair with the two descriptors beside it (``SCM_RIGHTS``). From there on
it is the template `up --detach` forks otherwise.

Until then it holds nothing of the run: it reads /dev/null, writes to /dev/null, sits
in a session of its own (a Ctrl-C at the terminal reaches the command alone), and
has no descriptor but its end of the socketpair. A command that does not hand it
over (a bad option, a refused start, Ctrl-C, `--help`) stops it by its pid and
reaps it before it exits (:func:`stop_unclaimed`); a child whose command died
without either finds the socketpair closed and exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from asyncrpc.runtime import config
from asyncrpc.runtime.forked_child import close_descriptors, fork_child, own_session, reopen_output

if TYPE_CHECKING:
    from asyncrpc.ops.up_fork import ForkedProgram

#: The options that make `up` detached.
DETACH_FLAGS = frozenset({"--detach", "-d"})
#: Options after which `up` starts nothing: the template would only be stopped again.
NOTHING_STARTED = frozenset({"--help"})
#: The most a handover's line may take: an environment of this size is far beyond any shell's.
MAX_HANDOVER = 1 << 22


def wanted(args: Sequence[str], env: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether `asyncrpc ARGS...` is an `up --detach` whose template is forked (Linux, and
    ASYNCRPC_TEMPLATE is not 0, as for the template `up` forks otherwise)."""
    if not platform.startswith("linux") or env.get(config.ENV_TEMPLATE, "1") == "0":
        return False
    if not args or args[0] != "up":
        return False
    options = list(args[1:])
    if "--" in options:
        options = options[: options.index("--")]
    return bool(DETACH_FLAGS & set(options)) and not NOTHING_STARTED & set(options)


class Handover:
    """What the command hands its early template: everything the template needs of the run.

    A plain class rather than a dataclass: :mod:`dataclasses` (and :mod:`inspect` with it)
    would load before the fork, and delay it.
    """

    __slots__ = ("env", "lock", "log", "run_dir")

    def __init__(self, run_dir: str, env: dict[str, str], log: int, lock: int) -> None:
        self.run_dir = run_dir
        self.env = env
        #: The launcher's log and the run directory's lock, as descriptors of this process.
        self.log = log
        self.lock = lock


class EarlyTemplate:
    """The early template's process, as the command holds it until it hands it the run.

    ``signal_process`` and ``reap`` stop it (:func:`os.kill`, :func:`os.waitpid`): a test
    that stands in for the process passes its own, so no failure of the handover can
    signal a process the test does not own.
    """

    def __init__(
        self,
        pid: int,
        channel: socket.socket,
        signal_process: Callable[[int, int], None] = os.kill,
        reap: Callable[[int, int], object] = os.waitpid,
    ) -> None:
        self.pid = pid
        self.channel = channel
        self._signal_process = signal_process
        self._reap = reap
        #: Handed over or stopped: from then on its pid is not this object's to signal.
        self.done = False

    def hand_over(
        self, run_dir: str, env: Mapping[str, str], log: int, lock: int
    ) -> ForkedProgram | None:
        """Give it its run; the process to wait on, or None when it is gone (it is stopped
        and reaped then: the caller starts a template the usual way).

        ``env`` is its whole environment but the lock's variable, which it sets to the
        number the lock's descriptor has there.
        """
        if self.done:
            return None
        line = json.dumps({"run_dir": run_dir, "env": dict(env)}).encode() + b"\n"
        try:
            sent = socket.send_fds(self.channel, [line], [log, lock])
            if sent < len(line):
                # Only what is left: once the whole line is out, the template may read it
                # and close its end at once, and even an empty write to a closed peer fails.
                self.channel.sendall(line[sent:])
        except OSError:
            self.stop()
            return None
        finally:
            self.channel.close()
        self.done = True
        from asyncrpc.ops.up_fork import ForkedProgram

        return ForkedProgram(self.pid)

    def stop(self) -> None:
        """Stop it by its pid and reap it (it holds nothing of the run: nothing to clean)."""
        self.channel.close()
        if self.done:
            return
        self.done = True
        with contextlib.suppress(ProcessLookupError):
            self._signal_process(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            self._reap(self.pid, 0)


#: The early template of this process's command, until the command claims it.
_waiting: EarlyTemplate | None = None


def start(template: Callable[[socket.socket], int]) -> EarlyTemplate:
    """Fork the early template: the child runs ``template(channel)`` and exits with its code.

    Call it while no thread runs (the child would find their locks held). The command
    claims the child with :func:`claim`; :func:`stop_unclaimed` stops it otherwise.
    """
    global _waiting
    ours, theirs = (_above_standard(end) for end in socket.socketpair())

    def child() -> int:
        ours.close()
        _detach(theirs)
        return template(theirs)

    pid = fork_child(child)
    theirs.close()
    _waiting = EarlyTemplate(pid, ours)
    return _waiting


def claim() -> EarlyTemplate | None:
    """The early template, now the caller's to hand over or stop; None if there is none."""
    global _waiting
    early, _waiting = _waiting, None
    return early


def stop_unclaimed() -> None:
    """Stop the early template if nobody claimed it (the command ends without a run)."""
    early = claim()
    if early is not None:
        early.stop()


def _above_standard(sock: socket.socket) -> socket.socket:
    """``sock`` on a descriptor above 2: a command started with one of its standard
    descriptors closed would otherwise find its socketpair where its output goes."""
    moved = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, 3)
    sock.close()
    return socket.socket(fileno=moved)


def _detach(channel: socket.socket) -> None:
    """In the fresh child: its own session, /dev/null in and out, nothing else inherited."""
    own_session()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    close_descriptors([channel.fileno()])


def receive(channel: socket.socket) -> Handover | None:
    """In the early template: wait for the command's handover; None if it ends without one."""
    data, fds, _, _ = socket.recv_fds(channel, 65536, 2)
    while data and not data.endswith(b"\n") and len(data) < MAX_HANDOVER:
        more = channel.recv(65536)
        if not more:
            break
        data += more
    channel.close()
    if not data.endswith(b"\n") or len(fds) != 2:
        for fd in fds:
            os.close(fd)
        return None
    message = json.loads(data)
    return Handover(message["run_dir"], dict(message["env"]), fds[0], fds[1])


def become(handed: Handover) -> None:
    """In the early template: take the run as a forked template starts with it, its output
    to the launcher's log and the lock's descriptor named in its environment.

    Its process title is the template's to set, before the environment changes (see
    :mod:`asyncrpc.ops.up_fork`): here the environment is replaced.
    """
    from asyncrpc.supervise.plan import TEMPLATE_MODULE

    sys.argv = [TEMPLATE_MODULE, "--supervise", handed.run_dir]
    os.dup2(handed.log, 1)
    os.dup2(handed.log, 2)
    os.close(handed.log)
    os.set_inheritable(handed.lock, True)
    reopen_output()
    os.environ.clear()
    os.environ.update(handed.env)
    os.environ[config.ENV_RUN_LOCK_FD] = str(handed.lock)
