"""Is a TCP port free, and if not, who holds it?

`asyncrpc up` checks its ports before it starts anything, so a port in use
stops it with a message naming the port, the process holding it (when this
user may see it) and the option that picks another port. psutil finds the
holder on Linux and macOS alike.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from asyncrpc.runtime.errors import CommandError
from asyncrpc.runtime.serving import PortInUse, bind

if TYPE_CHECKING:
    import psutil

# psutil (0.1 s to import) only when a port is taken: `up` checks its ports on every start.


def port_in_use(host: str, port: int) -> bool:
    """True when binding ``host:port`` fails because something already holds it.

    It binds as the servers do (:func:`~asyncrpc.runtime.serving.bind`), so a port in
    TIME_WAIT does not count as taken; a port this user may not bind counts as taken.
    """
    try:
        bind(host, port, listen=False).close()
    except PortInUse as error:
        if error.errno in (errno.EADDRINUSE, errno.EACCES):
            return True
        raise
    return False


def _listeners(port: int) -> Iterator[int | None]:
    """Pids of the sockets listening on ``port`` (None where the OS hides the owner).

    The system-wide table first; where it needs privileges (macOS), each process
    of this user in turn.
    """
    import psutil

    try:
        for conn in psutil.net_connections(kind="inet"):
            if _listens_on(conn, port):
                yield conn.pid
        return
    except psutil.AccessDenied:
        pass
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if any(_listens_on(conn, port) for conn in process.net_connections(kind="inet")):
                yield process.pid


def _listens_on(conn: Any, port: int) -> bool:
    import psutil

    return conn.status == psutil.CONN_LISTEN and bool(conn.laddr) and conn.laddr.port == port


def holder(port: int) -> str | None:
    """`pid 123 (python -m http.server 8001)` for the process listening on ``port``, if visible."""
    import psutil

    for pid in _listeners(port):
        if pid is None:
            continue
        with contextlib.suppress(psutil.Error):
            return f"pid {pid} ({_command(psutil.Process(pid))})"
    return None


def _command(process: psutil.Process) -> str:
    import psutil

    try:
        text = " ".join(" ".join(process.cmdline()).split()) or process.name()
    except psutil.Error:
        return "?"
    return text if len(text) <= 120 else text[:117] + "..."


def in_use_message(what: str, host: str, port: int, option: str) -> str:
    """The sentence a person reads when ``port`` is taken."""
    held = holder(port)
    by = f" by {held}" if held else ""
    return (
        f"port {port} on {host} ({what}) is already in use{by}. "
        f"Stop that process, or choose another port with {option} PORT."
    )


def check_free(ports: list[tuple[str, str, int, str]]) -> None:
    """Raise one CommandError naming every (what, host, port, option) that is taken."""
    problems = [
        in_use_message(what, host, port, option)
        for what, host, port, option in ports
        if port_in_use(host, port)
    ]
    if problems:
        raise CommandError("\n".join(problems))
