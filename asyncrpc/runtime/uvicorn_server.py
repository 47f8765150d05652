"""The one uvicorn server every asyncrpc process runs an ASGI app on.

The Resonate server and the gateway run it as their process's main loop; the
supervisor process runs its control server and the dashboard on its own loop.
Each serves on a socket bound by :func:`asyncrpc.runtime.serving.bind`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import uvicorn

from asyncrpc.runtime import signals


class GracefulServer(uvicorn.Server):
    """uvicorn's server, except that SIGTERM/SIGINT end in a clean exit 0.

    Stock uvicorn re-raises the signal after its graceful shutdown, so the
    process would die of it; this one handles SIGINT/SIGTERM on its loop
    (:func:`asyncrpc.runtime.signals.handle_stop_signals`) and returns. With
    ``handles_signals=False`` it leaves them alone: the supervisor process runs
    two servers next to its own work and stops them itself.

    ``before_shutdown`` runs when shutting down starts, before uvicorn waits for open
    requests: the Resonate server ends its long-lived poll streams there, so a stop
    takes milliseconds instead of uvicorn's graceful timeout.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        before_shutdown: Callable[[], None] | None = None,
        *,
        handles_signals: bool = True,
    ) -> None:
        super().__init__(config)
        self._before_shutdown = before_shutdown
        self._handles_signals = handles_signals

    def request_exit(self) -> None:
        """Begin a clean shutdown, as SIGTERM would."""
        self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._before_shutdown is not None:
            self._before_shutdown()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Signals reach the main thread only, as in uvicorn's own capture_signals.
        if not self._handles_signals or threading.current_thread() is not threading.main_thread():
            yield
            return
        remove = signals.handle_stop_signals(lambda signum: self.handle_exit(signum, None))
        try:
            yield
        finally:
            remove()
