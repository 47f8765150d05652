"""Is a TCP port free, and if not, who holds it?

`asyncrpc up` checks its ports before it starts anything, so a port in use
stops it with a message naming the port, the process holding it (when this
user may see it) and the option that picks another port.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from pathlib import Path

from asyncrpc.launcher.errors import LauncherError


def port_in_use(host: str, port: int) -> bool:
    """True when binding ``host:port`` fails because something already holds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option uvicorn sets, so a port in TIME_WAIT does not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            local, state, inode = parts[1], parts[3], parts[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def holder(port: int, proc: Path = Path("/proc")) -> str | None:
    """`pid 123 (python -m http.server 8001)` for the process listening on ``port``, if visible."""
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        return f"pid {entry.name} ({_cmdline(entry)})"
    return None


def _cmdline(entry: Path) -> str:
    try:
        raw = (entry / "cmdline").read_bytes()
    except OSError:
        return "?"
    text = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
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
    """Raise one LauncherError naming every (what, host, port, option) that is taken."""
    problems = [
        in_use_message(what, host, port, option)
        for what, host, port, option in ports
        if port_in_use(host, port)
    ]
    if problems:
        raise LauncherError("\n".join(problems))
