"""Forking a child that runs one function and exits, never returning into its parent's code.

The fork template forks every replica and relayed command this way, and `up
--detach` forks the template itself: whatever the child does (returns a code,
raises, calls ``sys.exit``), it ends in ``os._exit`` with its output flushed, so
it never runs its parent's ``finally`` blocks, atexit handlers or event loop.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable


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
