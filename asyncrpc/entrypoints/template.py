"""The template: one process that has imported what replicas run, and forks them on request.

Starting a replica as `python -m asyncrpc ...` spends most of its time importing
the SDK, FastAPI and asyncrpc. The supervisor instead starts this process once
(`python -m asyncrpc.entrypoints.template FD`, in a session of its own); it imports
those modules and then serves requests on the socket FD, one JSON object a line:

- in: ``{"start": N, "args": [...], "env": {...}, "log": PATH, "cwd": PATH}``,
  the arguments of `asyncrpc ARGS...`;
- out: ``{"started": N, "pid": PID}`` once forked, ``{"exited": PID, "code": C}``
  when that child ends (C as in ``Popen.returncode``: negative for a signal);
- in: ``{"cancel": N}``: the supervisor no longer wants request N (it is
  stopping); one still waiting here is dropped (out: ``{"failed": N}``), one
  forked already is the supervisor's to stop.

A request that waits while the modules load is dropped, not forked, when the
channel closes first: nobody would watch or stop that child.

A detached `up` starts it as `python -m asyncrpc.entrypoints.template --supervise
RUN_DIR` instead, or, as the `asyncrpc` program starts, forks it before it loads the
CLI (:func:`supervise_early`, :mod:`asyncrpc.ops.up_early`), and its imports are split
over two processes, one a core. It
loads the web stack (SHARED_PRELOAD), then forks the *server template*
(`--server` in `ps`), which loads the server's modules and forks the server,
and meanwhile loads the SDK and the supervisor's modules itself and forks the
detached supervisor (with a channel to each template). It forwards SIGTERM to
the supervisor, and exits with its exit code once it has gone and the server
template has exited too. It loads the nodes' and the gateway's modules while
the supervisor sets itself up, serving requests between two of them (see
EARLY); the supervisor imports the dashboard meanwhile. One interpreter start
then serves the supervisor and every replica.

While it serves, it also runs the CLI's short commands for their callers
(:mod:`asyncrpc.supervise.command_relay`): a caller connects to
``RUN_DIR/cli.sock`` and hands over its arguments, environment, working
directory and standard descriptors; a forked child runs the command on them
and the caller gets its exit code.

Each child is an ordinary process of its own: it calls ``setsid``, points
stdin at /dev/null and stdout/stderr at its log, closes every other file
descriptor, takes the requested environment and runs the CLI as
`python -m asyncrpc` would. The template that forked it is its parent, so it
reaps it and reports the exit code; the supervisor never loses an exit status.

Rules that keep a fork safe: the template only imports. It starts no event
loop and no thread (it refuses to serve if an import started one), opens no
socket but its channel and no database, and configures no logging. Its own
signal handlers are reset in each child. So it sets them with ``signal.signal``
rather than :mod:`asyncrpc.runtime.signals`, whose handlers live on an event
loop: SIGCHLD wakes its select loop, SIGINT is ignored (Ctrl-C reaches the
supervisor), SIGTERM is forwarded to a detached supervisor. On EOF of its
channel (the supervisor is gone) it exits; running children keep running.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import select
import selectors
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

import setproctitle

from asyncrpc.runtime import config
from asyncrpc.runtime.forked_child import (
    close_descriptors,
    exit_code,
    fork_child,
    own_session,
    reopen_output,
)
from asyncrpc.supervise import command_relay

#: What a detached `up` loads before it forks the server template: the web stack, which the
#: server shares with the supervisor and the gateway. Loaded on both sides, it would cost the
#: other core more than the split saves.
SHARED_PRELOAD = ("asyncio", "fastapi", "fastapi.responses", "pydantic", "uvicorn", "httpx")
#: What the server imports on top: a detached `up` loads it in its server template.
SERVER_PRELOAD = (
    "asyncrpc.server.main",
    "asyncrpc.server.retention",
    "asyncrpc.server.store",
    "asyncrpc.runtime.serving",
    "asyncrpc.runtime.event_loop",
)
#: What a worker node imports (the SDK, and aiohttp with it), and then what the gateway adds.
NODE_PRELOAD = ("resonate.resonate", "asyncrpc.node.worker", "asyncrpc.runtime.process")
GATEWAY_PRELOAD = ("asyncrpc.gateway.main", "asyncrpc.gateway.settings")
#: What replicas import: loaded once here, shared copy-on-write by every child.
PRELOAD = SERVER_PRELOAD + NODE_PRELOAD + GATEWAY_PRELOAD
#: Replicas a child may be forked for before the preload is complete (by :func:`early_kind`),
#: and the module that must be loaded by then: any other child (the gateway, `node gateway`)
#: would import the rest itself, and all at once, and build its first app without the warm-up.
EARLY = {"server": "asyncrpc.server.main", "node": "asyncrpc.node.worker"}
#: Of those, the ones that wait for the CLI too: nine nodes would each build it themselves.
EARLY_WITH_CLI = frozenset({"node"})
#: The commands replicas run: a template builds the CLI of these alone for its replicas
#: (:func:`replica_cli`), as `python -m asyncrpc node ...` loads only that command's module.
REPLICA_COMMANDS = ("server", "node")
#: The gateway's command line starts as a worker node's does (`node gateway ...`).
GATEWAY_ARGS = ["node", "gateway"]
#: Preloaded where present: uvloop is not on every platform, the others are what Typer and
#: URL parsing import late (private modules: their absence costs only time).
OPTIONAL_PRELOAD = ("uvloop", "typer._adapters", "stringprep")
#: What a detached supervisor imports before it is forked: its own modules and the SDK, which
#: its dashboard shares with the replicas. The dashboard itself is not among them: the
#: supervisor, once it has asked for the server, imports it while the template imports the
#: replicas' modules, on the other core.
SUPERVISOR_PRELOAD = ("resonate.resonate", "asyncrpc.entrypoints.detached_supervisor")
#: What only the CLI's relayed commands print with (rich, the status table): loaded once the
#: template has been idle for IDLE_S, after the replicas' start, which needs none of it.
LATE_PRELOAD = ("rich.console", "rich.table", "asyncrpc.terminal.status_table")
#: Seconds without a request before the template loads LATE_PRELOAD: past the replicas' start,
#: which the import would slow down on a machine of two cores.
IDLE_S = 1.0
#: httpx's own command line (`httpx URL`), which its package imports when it can: it loads
#: rich, pygments and click's terminal parts, about a fifth of a second of CPU that nothing
#: run from here uses. Marked absent in the template, httpx goes without it.
SKIPPED = ("httpx._main",)


def skip_unused_modules() -> None:
    """Mark SKIPPED absent (an import of one raises ImportError), unless already loaded."""
    for name in SKIPPED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def late_preload() -> None:
    """Import LATE_PRELOAD and build the whole CLI: a relayed `status` then finds rich and
    its command loaded."""
    for name in LATE_PRELOAD:
        importlib.import_module(name)
    cli_command()


def preload(
    modules: tuple[str, ...] = PRELOAD,
    between: Callable[[], None] = lambda: None,
    complete: bool = True,
    commands: tuple[str, ...] = REPLICA_COMMANDS,
) -> None:
    """Import ``modules`` and, when ``complete``, build the CLI of ``commands``, so a child
    starts with nothing left to load.

    ``between`` runs after each module (to serve requests that arrived meanwhile).
    """
    for name in modules:
        importlib.import_module(name)
        between()
    if not complete:
        return
    for name in OPTIONAL_PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    for command in commands:
        replica_cli([command])
    if "asyncrpc.gateway.app" in sys.modules:
        warm_gateway()


def early_kind(args: list[str]) -> str:
    """The key of EARLY that `asyncrpc ARGS...` falls under: its command, but `gateway` for
    the gateway (whose command is `node` too)."""
    if args[: len(GATEWAY_ARGS)] == GATEWAY_ARGS:
        return "gateway"
    return args[0] if args else ""


def ready_early(args: list[str]) -> bool:
    """Whether a child running `asyncrpc ARGS...` may be forked before the preload is complete."""
    kind = early_kind(args)
    module = EARLY.get(kind)
    if module is None or module not in sys.modules:
        return False
    return kind not in EARLY_WITH_CLI or _command_module(args) in _replica_clis


def warm_gateway() -> None:
    """Build the gateway's app once and drop it, so a forked gateway finds FastAPI warm.

    The first app a process builds fills FastAPI's and pydantic's caches (a validator
    per route and answer): about 0.26 s of CPU on this project's machine against 0.01 s
    for the next one, and it made the gateway the last replica of `up` to be ready.
    Nothing runs: the app's lifespan, which joins the server, starts only in the child.
    """
    from asyncrpc.gateway.app import create_app
    from asyncrpc.gateway.settings import GatewaySettings

    def never(_: GatewaySettings) -> Any:
        raise RuntimeError("the template's warm-up app never starts")

    create_app(GatewaySettings(server_url="http://127.0.0.1:1", gateway_id="template"), never)


@functools.cache
def cli_command() -> Any:
    """The CLI with every command, as the click command Typer builds from it (once, here):
    what relayed commands run on."""
    import typer.main

    from asyncrpc.cli import app

    return typer.main.get_command(app)


#: The CLI a replica runs on, by the module of its command (see :func:`replica_cli`).
_replica_clis: dict[str, Any] = {}


def _command_module(args: list[str]) -> str | None:
    """The module of the CLI that registers the command `asyncrpc ARGS...` runs, if known."""
    from asyncrpc.cli import COMMAND_MODULES

    name = next((arg for arg in args if not arg.startswith("-")), "")
    return COMMAND_MODULES.get(name)


def replica_cli(args: list[str]) -> Any:
    """The click command a replica running `asyncrpc ARGS...` runs on: with only its command's
    module loaded, as `python -m asyncrpc ARGS...` has it (built once a module, here).

    The whole CLI (:func:`cli_command`: every command's module and its options) costs a
    template about 0.05 s of CPU on the way to the replicas' start; one command, 0.01 s.
    """
    module = _command_module(args)
    if module is None:
        return cli_command()
    if module not in _replica_clis:
        import typer.main

        from asyncrpc.cli import load_commands

        _replica_clis[module] = typer.main.get_command(load_commands(args))
    return _replica_clis[module]


def run_cli(args: list[str], command: Any = None) -> int:
    """Run `asyncrpc ARGS...` in this process on ``command`` (default: the whole CLI); its
    exit code."""
    sys.argv = ["asyncrpc", *args]
    try:
        (command or cli_command()).main(args=args, prog_name="asyncrpc")
    except SystemExit as exit:
        return exit_code(exit)
    return 0


def _become_replica(request: dict[str, Any]) -> None:
    """In the fresh child: own session, own log, nothing of the template's left open."""
    own_session()
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    close_descriptors()
    os.chdir(request["cwd"])
    # `ps` shows what runs here, as if it were spawned: `python -m asyncrpc node b ...`.
    setproctitle.setproctitle(" ".join([sys.executable, "-m", "asyncrpc", *request["args"]]))
    os.environ.clear()
    os.environ.update(request["env"])


def fork_command(request: dict[str, Any], fds: list[int]) -> int:
    """Fork a child that runs a relayed command on the caller's descriptors; the child's pid."""

    def command() -> int:
        own_session()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        close_descriptors()
        reopen_output()
        os.chdir(request["cwd"])
        setproctitle.setproctitle(" ".join([sys.executable, "-m", "asyncrpc", *request["args"]]))
        os.environ.clear()
        os.environ.update(request["env"])
        return run_cli(list(request["args"]))

    try:
        return fork_child(command)
    finally:
        for fd in fds:
            os.close(fd)


def fork_replica(request: dict[str, Any]) -> int:
    """Fork a child that runs ``request``; the child's pid."""

    def replica() -> int:
        _become_replica(request)
        args = list(request["args"])
        return run_cli(args, replica_cli(args))

    return fork_child(replica)


class Template:
    """The request loop: fork on request, reap and report exits, stop on EOF."""

    def __init__(
        self,
        channel: socket.socket,
        supervisor: int | None = None,
        commands: socket.socket | None = None,
        late: Callable[[], None] | None = None,
        sibling: int | None = None,
    ) -> None:
        self.channel = channel
        #: The server template forked from here (detached `up`): reaped, never reported.
        self.sibling = sibling
        #: Run once the template has had nothing to do for IDLE_S (see LATE_PRELOAD).
        self.late = late
        #: Where callers of relayed CLI commands connect, and each running one's caller.
        self.commands = commands
        self.callers: dict[int, socket.socket] = {}
        #: The supervisor forked from here (detached `up`), and its exit code once reaped.
        self.supervisor = supervisor
        self.supervisor_code: int | None = None
        self.closed = False
        #: Requests that came while the modules loaded and wait for all of them, by number.
        self.deferred: dict[Any, bytes] = {}
        if supervisor is not None:
            signal.signal(signal.SIGTERM, self._forward)
        self.buffer = b""
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_r, False)
        os.set_blocking(self.wakeup_w, False)

    def _send(self, message: dict[str, Any]) -> None:
        self.channel.sendall(json.dumps(message).encode() + b"\n")

    def _handle(self, line: bytes, early: bool = False) -> None:
        try:
            request = json.loads(line)
            if "cancel" in request:
                self._cancel(request["cancel"])
                return
            number = request["start"]
            args = [str(arg) for arg in request["args"]]
        except (ValueError, KeyError, TypeError, IndexError) as error:
            print(f"template: ignoring a malformed request: {error!r}", file=sys.stderr)
            return
        if early and not ready_early(args):
            self.deferred[number] = line
            return
        if threading.active_count() != 1:
            self._send({"failed": number, "error": "the template runs threads: forking is unsafe"})
            return
        try:
            pid = fork_replica(request)
        except OSError as error:
            self._send({"failed": number, "error": str(error)})
            return
        self._send({"started": number, "pid": pid})

    def _cancel(self, number: Any) -> None:
        """Drop request ``number`` if it still waits here."""
        if self.deferred.pop(number, None) is not None:
            self._send({"failed": number, "error": "cancelled"})

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.supervisor:
                self.supervisor_code = os.waitstatus_to_exitcode(status)
                continue
            if pid == self.sibling:
                self.sibling = None
                continue
            caller = self.callers.pop(pid, None)
            if caller is not None:
                command_relay.answer(caller, {"exited": os.waitstatus_to_exitcode(status)})
                caller.close()
                continue
            self._send({"exited": pid, "code": os.waitstatus_to_exitcode(status)})

    def _read(self, early: bool = False) -> bool:
        data = self.channel.recv(65536)
        if not data:
            self.closed = True
            return False
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if line.strip():
                self._handle(line, early)
        return True

    def _forward(self, signum: int, frame: object) -> None:
        if self.supervisor is not None and self.supervisor_code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.supervisor, signum)

    def serve_pending(self) -> None:
        """Handle the requests that have arrived and may go early, without waiting for more.

        Deferred ones whose modules have loaded since go first, in the order they came.
        """
        for number, line in list(self.deferred.items()):
            if self.closed:
                break
            del self.deferred[number]
            self._handle(line, early=True)
        while not self.closed and select.select([self.channel], [], [], 0)[0]:
            self._read(early=True)

    def serve(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(self.wakeup_w)
        selector = selectors.DefaultSelector()
        selector.register(self.channel, selectors.EVENT_READ)
        selector.register(self.wakeup_r, selectors.EVENT_READ)
        if self.commands is not None:
            selector.register(self.commands, selectors.EVENT_READ)
        try:
            if not self.closed:  # after EOF nobody would watch what they start
                for line in list(self.deferred.values()):
                    self._handle(line)
            self.deferred.clear()
            self._reap()  # children forked while the modules loaded may have exited
            while not self.closed:
                events = selector.select(IDLE_S if self.late is not None else None)
                if not events and self.late is not None:
                    late, self.late = self.late, None
                    late()
                    continue
                for key, _ in events:
                    if key.fileobj == self.wakeup_r:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self.wakeup_r, 4096)
                    elif key.fileobj == self.commands:
                        self._accept(selector)
                    elif key.data == "caller":
                        selector.unregister(key.fileobj)
                        self._run_command(key.fileobj)  # type: ignore[arg-type]
                    elif not self._read():
                        return
                self._reap()
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            selector.close()
            self.stop()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        """Take a caller of a relayed command; its request is read once it has arrived."""
        assert self.commands is not None
        with contextlib.suppress(BlockingIOError, InterruptedError):
            conn, _ = self.commands.accept()
            conn.setblocking(False)
            selector.register(conn, selectors.EVENT_READ, data="caller")

    def _run_command(self, conn: socket.socket) -> None:
        """Fork the child that runs a caller's command, or tell the caller to run it itself."""
        received = command_relay.read_request(conn)
        if received is None or threading.active_count() != 1:
            if received is not None:
                for fd in received[1]:
                    os.close(fd)
            command_relay.answer(conn, {"refused": 1})
            conn.close()
            return
        request, fds = received
        try:
            pid = fork_command(request, fds)
        except OSError:
            command_relay.answer(conn, {"refused": 1})
            conn.close()
            return
        self.callers[pid] = conn
        command_relay.answer(conn, {"pid": pid})

    def stop(self) -> None:
        """Close the channel and wait for the supervisor forked from here, if any."""
        if self.commands is not None:
            path = self.commands.getsockname()
            self.commands.close()
            with contextlib.suppress(OSError):
                os.unlink(path)
        for caller in self.callers.values():
            caller.close()
        self.channel.close()
        if self.supervisor is not None and self.supervisor_code is None:
            with contextlib.suppress(ChildProcessError):
                _, status = os.waitpid(self.supervisor, 0)
                self.supervisor_code = os.waitstatus_to_exitcode(status)
        if self.sibling is not None:  # it exits once the supervisor's end of its channel closes
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.sibling, 0)
            self.sibling = None


def fork_supervisor(
    channel: socket.socket,
    server_channel: socket.socket,
    run_dir: str,
    template_end: socket.socket,
) -> int:
    """Fork the detached supervisor of ``run_dir``, talking to this template on ``channel``
    and to the server template on ``server_channel``.

    The child closes its copy of ``template_end``, the channel's other end: held open
    there, the supervisor would never read the channel's end when the template dies.
    """

    def supervisor() -> int:
        template_end.close()
        os.setsid()
        title = f"{sys.executable} -m asyncrpc.entrypoints.detached_supervisor {run_dir}"
        setproctitle.setproctitle(title)
        from asyncrpc.entrypoints.detached_supervisor import main as supervise

        return supervise([run_dir], template=channel, server_template=server_channel)

    return fork_child(supervisor)


def fork_server_template(channel: socket.socket, others: tuple[socket.socket, ...]) -> int:
    """Fork the server template: it loads the server's modules and forks the server.

    Forked once the web stack is in, it loads the server's modules on one core while this
    process loads the SDK on the other. It serves ``channel`` (the supervisor has the
    other end) and holds none of ``others``, nor the run directory's lock, so the
    supervisor's exit ends its channel and nothing else.
    """

    def server_template() -> int:
        for sock in others:
            sock.close()
        # A session of its own: where the kernel groups CPU time by session (autogroup), it
        # would otherwise share this process's share of a busy machine instead of adding one.
        os.setsid()
        _let_go_of_the_run_lock()
        setproctitle.setproctitle(f"{sys.executable} -m asyncrpc.entrypoints.template --server")
        template = Template(channel)
        if _preloaded(SERVER_PRELOAD, template.serve_pending, commands=("server",)):
            template.serve()
        else:
            template.stop()  # the supervisor then spawns the server itself
        return 0

    return fork_child(server_template)


def _let_go_of_the_run_lock() -> None:
    """Close this process's copy of the run directory's lock, which the supervisor holds now.

    The supervisor's life is the lock's, not this template's (which outlives it by a moment).
    """
    handed = os.environ.pop(config.ENV_RUN_LOCK_FD, None)
    if handed and handed.isdigit():
        with contextlib.suppress(OSError):
            os.close(int(handed))


def _preloaded(
    modules: tuple[str, ...],
    between: Callable[[], None] = lambda: None,
    complete: bool = True,
    commands: tuple[str, ...] = REPLICA_COMMANDS,
) -> bool:
    preload(modules, between, complete, commands)
    if threading.active_count() == 1:
        return True
    names = ", ".join(thread.name for thread in threading.enumerate())
    print(f"template: an import started threads ({names}); forking is unsafe", flush=True)
    return False


USAGE = "usage: python -m asyncrpc.entrypoints.template FD [RUN_DIR] | --supervise RUN_DIR"


def supervise(run_dir: str) -> int:
    """A detached `up`: fork the server template and the supervisor, then serve the replicas.

    The supervisor has a channel to each template: the server template forks the server,
    this one every other replica (and runs the CLI's relayed commands).
    """
    if not _preloaded(SHARED_PRELOAD, complete=False):
        return 1  # nothing is forked: the `up` that waits reports it
    ours, supervisor_end = socket.socketpair()
    servers_end, supervisor_servers_end = socket.socketpair()
    sibling = fork_server_template(servers_end, (ours, supervisor_end, supervisor_servers_end))
    servers_end.close()
    if not _preloaded(SUPERVISOR_PRELOAD, complete=False):
        for sock in (ours, supervisor_end, supervisor_servers_end):
            sock.close()
        os.waitpid(sibling, 0)  # its channel has closed: it exits
        return 1
    supervisor = fork_supervisor(supervisor_end, supervisor_servers_end, run_dir, ours)
    supervisor_end.close()
    supervisor_servers_end.close()
    _let_go_of_the_run_lock()
    template = Template(ours, supervisor, late=late_preload, sibling=sibling)
    # The replicas' modules load while the supervisor sets itself up, and its requests are
    # served between two modules: a node starts once its modules and the CLI are in.
    between = template.serve_pending
    nodes = ("node",)  # the gateway's command is `node gateway`
    if _preloaded(NODE_PRELOAD, between, commands=nodes) and _preloaded(
        GATEWAY_PRELOAD, between, commands=nodes
    ):
        template.commands = command_relay.listen(os.path.abspath(run_dir))
        template.serve()
    else:
        template.stop()  # the supervisor then spawns its replicas itself
    code = template.supervisor_code
    return 1 if code is None else code if code >= 0 else 128 - code


def supervise_early(channel: socket.socket) -> int:
    """A detached `up`'s template forked before the command line was parsed
    (:mod:`asyncrpc.ops.up_early`): the web stack loads while the command prepares the
    plan, then, handed the run over ``channel``, it goes on as :func:`supervise`.
    Without a handover (the command stopped short of a run) it exits.
    """
    from asyncrpc.ops import up_early

    setproctitle.setproctitle(f"{sys.executable} -m asyncrpc.entrypoints.template")
    skip_unused_modules()
    # An import that fails here fails again in supervise(), whose output is the log by then.
    with contextlib.suppress(Exception):
        preload(SHARED_PRELOAD, complete=False)
    handed = up_early.receive(channel)
    if handed is None:
        return 0
    up_early.become(handed)
    return supervise(handed.run_dir)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    setproctitle.setproctitle(f"{sys.executable} -m asyncrpc.entrypoints.template")
    skip_unused_modules()
    if len(args) == 2 and args[0] == "--supervise":
        return supervise(args[1])
    if len(args) not in (1, 2) or not args[0].isdigit():
        print(USAGE, file=sys.stderr)
        return 2
    channel = socket.socket(fileno=int(args[0]))
    if not _preloaded(PRELOAD):
        return 1
    commands = command_relay.listen(os.path.abspath(args[1])) if len(args) == 2 else None
    Template(channel, commands=commands, late=late_preload).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
