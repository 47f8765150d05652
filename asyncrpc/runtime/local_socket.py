"""The server's second door for processes on its own machine: a Unix socket named by its port.

A request over TCP on loopback costs both ends the whole TCP stack on each
write; a Unix stream socket carries the same bytes for about half of that
(docs/architecture.md gives the measurement). So a server listening on TCP
port P of loopback (or of every address, loopback among them) also listens on
the Linux *abstract* Unix socket ``asyncrpc-server-P`` (no file to create,
clean up or leave behind; scoped to the network namespace, as loopback is),
and a process whose server URL is a loopback address with port P connects
there first, speaking the same HTTP, with the same ``Host``: whoever holds
loopback's port P is that server, so both doors lead to it. TCP stays the
server's address: in URLs, logs, the ready line, for every other client and
host.

Anyone on the machine may bind an abstract name first, so a client takes the
socket only when the process listening on it runs as its own user
(``SO_PEERCRED``); otherwise, or when nothing listens there (another
system, a server of an older asyncrpc), it connects over TCP, as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import sys

log = logging.getLogger(__name__)

#: Hosts whose port names a server on this machine's (or network namespace's) loopback.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: Hosts a server listens on that take loopback's port too.
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
_PEERCRED = struct.Struct("3i")  # pid, uid, gid


def supported() -> bool:
    """Whether this system has abstract Unix sockets (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "AF_UNIX")


def name(port: int) -> bytes:
    """The abstract socket name of the server on TCP ``port``."""
    return b"\0asyncrpc-server-%d" % port


def listen(host: str, port: int) -> socket.socket | None:
    """The local socket of a server on TCP ``host:port``, listening; None where there is none.

    None for a host that is not loopback (nor every address), and when the name is
    taken (by a process of another user): the server is then reached over TCP
    alone, and says so.
    """
    if not supported() or (host not in LOOPBACK_HOSTS and host not in _WILDCARD_HOSTS):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(name(port))
        sock.listen()
    except OSError as exc:
        sock.close()
        log.warning("no local socket for port %d (%s); local processes use TCP", port, exc)
        return None
    return sock


async def connect(host: str, port: int) -> socket.socket | None:
    """A socket connected to the local server for ``host:port``, if it is there and ours.

    None for a host that is not loopback, where nothing listens on the name, or where
    its listener runs as another user (then TCP is used, and the first time says so).
    """
    if host not in LOOPBACK_HOSTS or not supported():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, name(port))
        _, uid, _ = _PEERCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        )
    except OSError:
        sock.close()
        return None
    except BaseException:
        sock.close()
        raise
    if uid != os.getuid():
        sock.close()
        _warn_once(port, uid)
        return None
    return sock


_warned: set[int] = set()


def _warn_once(port: int, uid: int) -> None:
    if port not in _warned:
        _warned.add(port)
        log.warning(
            "the local socket of port %d belongs to user %d, not to this one; using TCP",
            port,
            uid,
        )
