"""Short commands run by the running system's template: no Typer or rich to load each time.

`asyncrpc status`, `kill`, `invoke` (`call`) and `ps` are one short exchange
with the supervisor or the gateway, so what they cost is mostly a fresh
Python loading Typer, rich and the rest: 0.3 to 0.6 s on this project's
2-core machine while it is busy. The run's template has all of that loaded
already. So while a system runs, its template listens on ``RUN_DIR/cli.sock``
(a Unix socket only this user may use, as the run directory), and the
command's own process, before it imports anything of the CLI, hands the
template its arguments, environment, working directory and its standard
input, output and error (the descriptors themselves): the template forks a
child that runs the command exactly as `asyncrpc ARGS...` would, writing to
the caller's terminal, and the caller exits with the child's exit code. A
signal the caller gets (Ctrl-C) goes to the child.

When no template listens there (no system runs, the socket path is too long
for the system, it is another installation of asyncrpc, or anything fails
before the child is forked) the command runs in its own process, as ever.
``ASYNCRPC_RELAY=0`` turns relaying off. This module imports only the
standard library's basics: it runs before the CLI does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
from collections.abc import Mapping, Sequence

#: The commands a template runs for the caller.
RELAYED = frozenset({"status", "ps", "kill", "invoke", "call"})
#: The socket in the run directory.
SOCKET_NAME = "cli.sock"
#: Set to 0 to run every command in its own process.
ENV_RELAY = "ASYNCRPC_RELAY"
ENV_RUN_DIR = "ASYNCRPC_RUN_DIR"  # as asyncrpc.runtime.config names it
#: The longest request (arguments and environment) a caller sends.
MAX_REQUEST = 256 * 1024
#: The Unix socket path limit of Linux (sun_path), terminating zero included.
MAX_SOCKET_PATH = 107
#: Which installation a caller and a template are: they relay only to their own.
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def socket_path(run_dir: str) -> str:
    return os.path.join(run_dir, SOCKET_NAME)


def run_dir_of(args: Sequence[str], env: Mapping[str, str], cwd: str) -> str | None:
    """The run directory a command's arguments and environment name, as the CLI resolves it.

    None when the arguments leave it unclear (a ``--run-dir`` without a value).
    """
    found: str | None = None
    for n, arg in enumerate(args):
        if arg == "--run-dir":
            if n + 1 >= len(args):
                return None
            found = args[n + 1]
        elif arg.startswith("--run-dir="):
            found = arg.split("=", 1)[1]
    chosen = found or env.get(ENV_RUN_DIR) or os.path.join(cwd, ".asyncrpc")
    return os.path.abspath(os.path.join(cwd, chosen))


# ── The caller: the command's own process ────────────────────────────────────


def relay(args: Sequence[str], env: Mapping[str, str], cwd: str) -> int | None:
    """Have the run's template run `asyncrpc ARGS...`; its exit code, or None if none would."""
    if not args or args[0] not in RELAYED or env.get(ENV_RELAY) == "0":
        return None
    run_dir = run_dir_of(args, env, cwd)
    if run_dir is None:
        return None
    path = socket_path(run_dir)
    if len(path.encode()) > MAX_SOCKET_PATH or not os.path.exists(path):
        return None
    request = {"args": list(args), "env": dict(env), "cwd": cwd, "package": PACKAGE}
    data = json.dumps(request).encode()
    if len(data) > MAX_REQUEST:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(path)
        socket.send_fds(sock, [data], [0, 1, 2])
        started = _answer(sock)
        if started is None or "pid" not in started:
            return None  # refused, or the template is gone: run it here
        return _wait(sock, int(started["pid"]))
    except OSError:
        return None
    finally:
        sock.close()


def _answer(sock: socket.socket) -> dict[str, int] | None:
    data = sock.recv(4096)
    if not data:
        return None
    try:
        answer = json.loads(data)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _wait(sock: socket.socket, pid: int) -> int:
    """Until the template reports the child's exit; signals for this process go to the child."""

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(OSError):
            os.kill(pid, signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    while True:
        try:
            answer = _answer(sock)
        except InterruptedError:
            continue
        if answer is None:
            os.write(2, b"asyncrpc: the system's template stopped before the command ended\n")
            return 1
        if "exited" in answer:
            code = int(answer["exited"])
            return code if code >= 0 else 128 - code


# ── The template's side ──────────────────────────────────────────────────────


def listen(run_dir: str) -> socket.socket | None:
    """The template's socket for relayed commands in ``run_dir``; None where it cannot be."""
    path = socket_path(run_dir)
    if len(path.encode()) > MAX_SOCKET_PATH or not os.path.isdir(run_dir):
        return None
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a dead template's: one template per run directory
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old = os.umask(0o177)  # the socket file: this user only
    try:
        sock.bind(path)
    except OSError:
        sock.close()
        return None
    finally:
        os.umask(old)
    sock.listen(16)
    sock.setblocking(False)
    return sock


def read_request(conn: socket.socket) -> tuple[dict[str, object], list[int]] | None:
    """A caller's request and its three descriptors; None (descriptors closed) if unusable."""
    try:
        data, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, 3)
    except OSError:
        return None
    try:
        request = json.loads(data)
        args, env, cwd = request["args"], request["env"], request["cwd"]
        usable = (
            len(fds) == 3
            and isinstance(args, list)
            and all(isinstance(a, str) for a in args)
            and bool(args)
            and args[0] in RELAYED
            and isinstance(env, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
            and isinstance(cwd, str)
            and request.get("package") == PACKAGE
        )
    except (ValueError, KeyError, TypeError):
        usable = False
    if not usable:
        for fd in fds:
            os.close(fd)
        return None
    return request, fds


def answer(conn: socket.socket, message: Mapping[str, int]) -> None:
    with contextlib.suppress(OSError):
        conn.send(json.dumps(message).encode())
