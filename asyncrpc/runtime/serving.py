"""Running an ASGI app on uvicorn the way every asyncrpc process wants it.

Shared by the Resonate server and the gateway: bind the socket ourselves (so
a taken port is a clear message, not a traceback), and end in exit code 0
after SIGTERM/SIGINT (stock uvicorn re-raises the signal after its graceful
shutdown, so the process would die of it).
"""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
from collections.abc import Callable, Iterator

import uvicorn


class PortInUse(ValueError):
    """The address to listen on is taken (or not an address of this machine)."""


def bind(host: str, port: int, port_option: str = "--port") -> socket.socket:
    """Listen on ``host:port``; :class:`PortInUse` says what is wrong and what to change."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            hint = f"another process listens there; choose another port with {port_option}"
        else:
            hint = f"check --host (an address of this machine, e.g. 127.0.0.1) and {port_option}"
        raise PortInUse(f"cannot listen on {host}:{port} ({exc.strerror or exc}); {hint}") from None


class GracefulServer(uvicorn.Server):
    """uvicorn's server, except that SIGTERM/SIGINT end in a clean exit 0.

    ``before_shutdown`` runs when shutting down starts, before uvicorn waits for open
    requests: the Resonate server ends its long-lived poll streams there, so a stop
    takes milliseconds instead of uvicorn's graceful timeout.
    """

    def __init__(
        self, config: uvicorn.Config, before_shutdown: Callable[[], None] | None = None
    ) -> None:
        super().__init__(config)
        self._before_shutdown = before_shutdown

    def request_exit(self) -> None:
        """Begin a clean shutdown, as SIGTERM would."""
        self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._before_shutdown is not None:
            self._before_shutdown()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
