"""The one way asyncrpc binds a TCP socket: to serve on it, to test a port, to find a free one.

Every server (the Resonate server, the gateway, the supervisor's control
server, the dashboard) listens on a socket bound here, so a taken port is a
clear :class:`PortInUse` naming the option to change, never a traceback; `up`
tests its ports the same way before it starts anything. The uvicorn server
that serves on such a socket is :class:`asyncrpc.runtime.uvicorn_server.GracefulServer`:
this module stays free of uvicorn, because `up` imports it before it hands over.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket

from asyncrpc.runtime.config import DEFAULT_HOST


class PortInUse(ValueError):
    """The address to listen on is taken (or not an address of this machine)."""

    def __init__(self, message: str, error: int | None) -> None:
        super().__init__(message)
        #: The ``errno`` binding failed with: EADDRINUSE when another socket holds the port.
        self.errno = error


def bind(
    host: str, port: int, port_option: str = "--port", *, listen: bool = True
) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: one the system picks), listening unless not
    ``listen``; :class:`PortInUse` says what is wrong and what to change (``port_option``).

    Like uvicorn and ``socket.create_server``, a port whose last connections linger in
    TIME_WAIT counts as free (SO_REUSEADDR, except on Windows where it would let two
    sockets share a port), and an IPv6 address binds IPv6 only.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if os.name != "nt":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            if listen:
                sock.listen()
        except BaseException:
            sock.close()
            raise
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            hint = f"another process listens there; choose another port with {port_option}"
        else:
            hint = f"check --host (an address of this machine, e.g. 127.0.0.1) and {port_option}"
        raise PortInUse(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); {hint}", exc.errno
        ) from None
    return sock


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port on ``host`` that nothing listens on right now (for a process about to start)."""
    with contextlib.closing(bind(host, 0)) as sock:
        return int(sock.getsockname()[1])
