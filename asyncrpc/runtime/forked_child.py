"""Forking a child that runs one function and exits, never returning into its parent's code.

The fork template forks every replica and relayed command this way, and `up
--detach` forks the template itself: whatever the child does (returns a code,
raises, calls ``sys.exit``), it ends in ``os._exit`` with its output flushed, so
it never runs its parent's ``finally`` blocks, atexit handlers or event loop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Collection


def fork_child(child: Callable[[], int]) -> int:
    """Fork; the child runs ``child()`` and exits with its code. The child's pid, here.

    A ``SystemExit`` in the child exits with its code (a message: printed, then 1);
    any other exception is printed and exits with 1.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        code = child()
    except SystemExit as exit:
        code = exit_code(exit)
    except BaseException:  # whatever happens, the child must not return
        with contextlib.suppress(Exception):
            import traceback  # only here: `up --detach` forks its template before it loads more

            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def exit_code(exit: SystemExit) -> int:
    """The process exit code ``sys.exit(...)`` asks for: None is 0, a message is 1."""
    if exit.code is None:
        return 0
    if isinstance(exit.code, int):
        return exit.code
    with contextlib.suppress(Exception):
        print(exit.code, file=sys.stderr)
    return 1


def own_session() -> None:
    """In a fresh child: a session of its own (a Ctrl-C at its parent's terminal does not
    reach it), and the signal handling a new interpreter starts with, not its parent's."""
    os.setsid()
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def close_descriptors(keep: Collection[int] = ()) -> None:
    """In a fresh child: close every descriptor above the standard three but ``keep``'s."""
    low = 3
    for fd in [*sorted(fd for fd in set(keep) if fd > 2), os.sysconf("SC_OPEN_MAX")]:
        os.closerange(low, fd)
        low = fd + 1


def reopen_output() -> None:
    """In a fresh child: ``sys.stdout`` and ``sys.stderr`` on descriptors 1 and 2, buffered
    as a fresh interpreter buffers them (stdout by line to a terminal, else by block;
    stderr by line)."""
    sys.stdout = open(1, "w", buffering=1 if os.isatty(1) else -1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
