"""How every asyncrpc process hears "stop": SIGINT (Ctrl-C) and SIGTERM (`kill`, the supervisor).

A process with an event loop (a worker node, the gateway, the server, the
supervisor) handles them on that loop: :func:`stop_event` gives an event they
set, :func:`handle_stop_signals` calls a function of its own and hands back the
undo. A command without an event loop that must clean up what it started runs
inside :func:`sigterm_as_interrupt`, so SIGTERM unwinds like Ctrl-C.

The fork template (:mod:`asyncrpc.entrypoints.template`) sets its handlers with
``signal.signal`` instead: it runs no event loop, and each child it forks resets
them before it becomes a replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator

#: The signals that ask a process to stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def handle_stop_signals(handler: Callable[[int], object]) -> Callable[[], None]:
    """From now on SIGINT and SIGTERM call ``handler(signum)`` on the running loop.

    Returns the function that removes the handlers again (each signal then does
    what it does by default).
    """
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, handler, sig)

    def remove() -> None:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)

    return remove


@contextlib.contextmanager
def stop_event() -> Iterator[asyncio.Event]:
    """An event that SIGINT or SIGTERM sets while the block runs on the running loop."""
    stop = asyncio.Event()
    remove = handle_stop_signals(lambda signum: stop.set())
    try:
        yield stop
    finally:
        remove()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every ``finally`` (stopping processes) runs."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
