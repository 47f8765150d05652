"""`asyncrpc up / down / status (ps) / call / kill / start / restart / logs`.

Thin Typer commands over :mod:`asyncrpc.launcher`: they parse options, call the
launcher's plain functions and print. Every foreseen failure is a
:class:`~asyncrpc.launcher.errors.LauncherError`, printed as one clear message
with its exit code (2 for a wrong name or value, 1 otherwise).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from asyncrpc import config, topology
from asyncrpc.cli.app import app
from asyncrpc.cli.options import (
    GatewayPortOption,
    ReadyTimeoutOption,
    ServerPortOption,
    ServerUrlOption,
)
from asyncrpc.launcher.errors import LauncherError, NothingRunning, UsageError
from asyncrpc.launcher.logtail import LogFollower
from asyncrpc.launcher.plan import Slot
from asyncrpc.launcher.rundir import RunDir
from asyncrpc.launcher.targets import parse_selector

if TYPE_CHECKING:
    from rich.console import Console

    from asyncrpc.launcher.control import ControlClient

# The heavier launcher modules (httpx, fastapi, uvicorn, the SDK) are imported inside the
# commands, so `asyncrpc node ...` and `asyncrpc server ...` do not pay for them at start.


@functools.cache
def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


_NODE_NAMES = ", ".join(topology.PROCESS_NAMES)
_FLOW_NAMES = ", ".join(topology.flow_names())

RunDirOption = Annotated[
    Path | None,
    typer.Option(
        "--run-dir",
        help="Where the launcher keeps its state, logs and database. "
        f"Default: ${config.ENV_RUN_DIR}, else ./.asyncrpc.",
        show_default=False,
    ),
]


class SignalName(StrEnum):
    KILL = "KILL"
    TERM = "TERM"


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """Turn a LauncherError into its message on stderr and its exit code."""
    try:
        yield
    except LauncherError as error:
        _console(stderr=True).print(
            f"[red]error:[/red] {error}", markup=True, highlight=False, soft_wrap=True
        )
        raise typer.Exit(error.exit_code) from None


def _rundir(run_dir: Path | None) -> RunDir:
    return RunDir((run_dir or config.run_dir(os.environ)).resolve())


def _client(run_dir: Path | None) -> ControlClient:
    from asyncrpc.launcher.control import connect

    return connect(_rundir(run_dir))


def _say(message: str) -> None:
    from asyncrpc.launcher import view

    view.launcher_line(_console(), message)


# -- up -------------------------------------------------------------------------


@app.command(
    epilog="Examples: [bold]asyncrpc up[/bold] (everything) · "
    "[bold]asyncrpc up await-chain --delay c=10[/bold] · "
    "[bold]asyncrpc up fan-out --scale h=2 --detach[/bold] · "
    "[bold]asyncrpc up await-chain --server-port 8101 --gateway-port 5100[/bold]",
)
def up(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            help=f"Flows ({_FLOW_NAMES}) and/or nodes (gateway, "
            f"{', '.join(topology.NODES)}) to run. A flow brings the gateway and its three "
            "nodes; a node brings only itself. None: everything.",
            show_default=False,
        ),
    ] = None,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach", "-d", help="Return once everything is ready and leave it running."
        ),
    ] = False,
    scale: Annotated[
        list[str] | None,
        typer.Option(
            help="Run NODE=N replicas of a worker node in one group (anycast), e.g. h=2. "
            "Repeat or separate with commas.",
            show_default=False,
        ),
    ] = None,
    delay: Annotated[
        list[str] | None,
        typer.Option(
            help="Crash-demo delay: NODE=SECONDS makes that node's step durably sleep before "
            "returning, e.g. c=10, leaving time to kill something mid-flow.",
            show_default=False,
        ),
    ] = None,
    respawn: Annotated[
        float | None,
        typer.Option(
            help="Start a node that died (crashed or was killed) again after SECONDS. "
            "Off by default.",
            show_default=False,
        ),
    ] = None,
    ttl: Annotated[
        float | None,
        typer.Option(
            help="Task lease of every worker node, in seconds (how soon a crashed node's "
            f"step is handed over). Default: the node's own ({config.DEFAULT_NODE_TTL:g}).",
            show_default=False,
        ),
    ] = None,
    server_url: ServerUrlOption = None,
    server_port: ServerPortOption = config.DEFAULT_SERVER_PORT,
    gateway_port: GatewayPortOption = config.DEFAULT_GATEWAY_PORT,
    ready_timeout: ReadyTimeoutOption = 30.0,
    run_dir: RunDirOption = None,
) -> None:
    """Start the server, the gateway and the nodes; wait until all are ready.

    The embedded server runs unless [bold]--server-url[/bold] (or RESONATE_URL)
    names a server that answers; its database is RUN_DIR/server.db. Then
    the gateway, then the nodes; each is checked for readiness (health URL
    or its ready line), then a table shows what runs where.

    In the foreground every process's output streams with a coloured
    prefix; [bold]Ctrl-C[/bold] stops everything. With [bold]--detach[/bold] it returns once
    ready. Either way other terminals can use [bold]status, call, kill,[/bold]
    [bold]start, restart, logs, down[/bold]. Logs: RUN_DIR/logs/NAME.log.
    """
    from asyncrpc.launcher import view
    from asyncrpc.launcher.up import UpOptions, prepare, run_foreground, start_detached

    out = _console()
    options = UpOptions(
        targets=targets or [],
        scale=scale or [],
        delay=delay or [],
        server_url=server_url,
        server_port=server_port,
        gateway_port=gateway_port,
        ttl=ttl,
        respawn=respawn,
        ready_timeout=ready_timeout,
    )
    rundir = _rundir(run_dir)
    with _reported():
        plan = prepare(options, os.environ, rundir.path, notify=_say)
        if detach:
            state = start_detached(plan, os.environ)
            view.print_status(out, state)
            out.print(
                "Everything is ready; [bold]asyncrpc down[/bold] stops it all. "
                + view.try_next(state, lead="Try")
            )
            return

        def ready(snapshot: dict[str, Any]) -> None:
            view.print_status(out, snapshot)
            out.print(
                f"Everything is ready; [bold]Ctrl-C[/bold] stops it all. {view.try_next(snapshot)}"
            )

        run_foreground(
            plan,
            os.environ,
            notify=_say,
            on_ready=ready,
            follow=lambda supervisor: view.stream_output(supervisor, out),
        )


# -- down -----------------------------------------------------------------------


@app.command()
def down(
    clean: Annotated[
        bool,
        typer.Option(
            "--clean",
            help="Also delete the run directory's logs and the embedded server's database.",
        ),
    ] = False,
    run_dir: RunDirOption = None,
) -> None:
    """Stop everything [bold]asyncrpc up[/bold] started, detached or not.

    Works even if the launcher itself died: the processes listed in its
    state file are stopped (only if they are still the very processes it
    started). Nothing running is not an error.
    """
    from asyncrpc.launcher.control import stop_orphans

    out = _console()
    rundir = _rundir(run_dir)
    with _reported():
        try:
            stopped = _client(run_dir).down()
        except NothingRunning:
            stopped = stop_orphans(rundir)
            if not stopped:
                out.print(f"Nothing was running in {rundir.path}.")
        except LauncherError as error:
            _say(f"{error}; stopping its processes directly")
            stopped = stop_orphans(rundir)
        if stopped:
            out.print(f"Stopped {', '.join(stopped)}.")
        if clean:
            shutil.rmtree(rundir.logs, ignore_errors=True)
            for path in rundir.path.glob(f"{rundir.db.name}*"):
                path.unlink(missing_ok=True)
            rundir.plan_file.unlink(missing_ok=True)
            out.print(f"Removed the logs and the database in {rundir.path}.")


# -- status / ps ----------------------------------------------------------------


def _status(as_json: bool, run_dir: Path | None) -> None:
    with _reported():
        snapshot = _client(run_dir).status()
    if as_json:
        print(json.dumps(snapshot, indent=1))
    else:
        from asyncrpc.launcher import view

        view.print_status(_console(), snapshot)


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command()
def status(as_json: JsonOption = False, run_dir: RunDirOption = None) -> None:
    """Show what runs: node, group, replica, pid, state, uptime, restarts.

    States: starting, running, exited (it stopped by itself), killed (by a
    signal), stopped. Also prints the server and gateway URLs. Exits 1 when
    nothing is running.
    """
    _status(as_json, run_dir)


@app.command("ps")
def ps(as_json: JsonOption = False, run_dir: RunDirOption = None) -> None:
    """Same as [bold]asyncrpc status[/bold]."""
    _status(as_json, run_dir)


# -- call -----------------------------------------------------------------------


@app.command(
    epilog="Examples: [bold]asyncrpc call await-chain[/bold] · "
    "[bold]asyncrpc call fan-out --json[/bold] · "
    "[bold]asyncrpc call await-chain --id await-chain-3f9a1c2e[/bold] (re-attach)",
)
def call(
    flow: Annotated[str, typer.Argument(help=f"The flow to call: {_FLOW_NAMES}.")],
    invocation_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="Invocation id. An id already used re-attaches to that invocation (its "
            "result, or waiting for it). Default: a fresh id, printed first.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the result before giving up.")
    ] = 60.0,
    as_json: JsonOption = False,
    gateway_url: Annotated[
        str | None,
        typer.Option(
            help=f"Gateway to call. Default: ${config.ENV_GATEWAY_URL}, else the launcher's.",
            show_default=False,
        ),
    ] = None,
    run_dir: RunDirOption = None,
) -> None:
    """Call a flow through the gateway; print its result and the time taken.

    await-chain and fan-out return their result to the caller; the detached
    chain returns at once, so its result is the value its last step (cog)
    stored, read from the server. A call survives a gateway restart. On
    timeout the invocation goes on: re-attach with --id.
    """
    from asyncrpc.launcher.calls import FlowCaller, new_invocation_id

    out = _console()
    with _reported():
        found = topology.find_flow(flow)
        if found is None:
            raise UsageError(f"unknown flow {flow!r}. Valid flows: {_FLOW_NAMES}.")
        if timeout <= 0:
            raise UsageError("--timeout must be a positive number of seconds.")
        gateway = gateway_url or os.environ.get(config.ENV_GATEWAY_URL)
        server = config.server_url(os.environ) if gateway else None
        if not gateway:
            snapshot = _client(run_dir).status()
            gateway, server = snapshot.get("gateway_url"), snapshot.get("server_url")
            if not gateway:
                raise LauncherError(
                    "the launcher runs no gateway. Start one with `asyncrpc start gateway`."
                )
            running = {n["node"] for n in snapshot["nodes"] if n["state"] == "running"}
            missing = [node for node in found.nodes if node not in running]
            if missing:
                _console(stderr=True).print(
                    f"note: {', '.join(missing)} not running here; the call waits until a "
                    f"node serves each step (e.g. `asyncrpc start {missing[0]}`)."
                )
        fresh = invocation_id is None
        the_id = invocation_id or new_invocation_id(found)
        if not as_json:
            again = f" (wait for it again with --id {the_id})" if fresh else ""
            out.print(f"calling {found.name} as invocation [bold]{the_id}[/bold]{again}")
        caller = FlowCaller(
            gateway_url=gateway.rstrip("/"),
            server_url=server,
            token=os.environ.get(config.ENV_TOKEN),
        )
        try:
            result = caller.call(found, the_id, timeout)
        except KeyboardInterrupt:
            raise LauncherError(
                f"interrupted; invocation {the_id} goes on. Wait for it again with "
                f"`asyncrpc call {found.name} --id {the_id}`.",
                130,
            ) from None
    if as_json:
        print(json.dumps(result.to_json()))
    else:
        out.print(f"result: [bold]{json.dumps(result.result)}[/bold] ({result.seconds:.2f}s)")


# -- kill / start / restart -----------------------------------------------------

NodeArgument = Annotated[
    str,
    typer.Argument(
        help=f"A node: {_NODE_NAMES}. `b` means every replica of b, `b.2` only replica 2.",
        show_default=False,
    ),
]


@app.command()
def kill(
    node: NodeArgument,
    signal_name: Annotated[
        SignalName,
        typer.Option(
            "--signal",
            "-s",
            case_sensitive=False,
            help="KILL simulates a crash (no clean-up); TERM asks for a clean stop.",
        ),
    ] = SignalName.KILL,
    run_dir: RunDirOption = None,
) -> None:
    """Signal a node (SIGKILL by default: a crash); wait until it is gone.

    The server and the gateway are nodes too. Only a process this launcher
    started and that is still that same process is signalled (a recycled pid
    is never touched). Bring a replacement up with [bold]asyncrpc start NODE[/bold];
    with [bold]up --respawn[/bold] that happens by itself.
    """
    with _reported():
        selector = parse_selector(node)
        killed = _client(run_dir).kill(str(selector), signal_name.value)
    _console().print(f"Sent SIG{signal_name.value} to {', '.join(killed)}; it is gone.")


@app.command()
def start(
    node: NodeArgument,
    delay: Annotated[
        float | None,
        typer.Option(
            help="Crash-demo delay (seconds) for the started node; default: as before.",
            show_default=False,
        ),
    ] = None,
    add: Annotated[
        bool, typer.Option("--add", help="Start one more replica of a worker node.")
    ] = False,
    run_dir: RunDirOption = None,
) -> None:
    """Start a node (a replacement after a crash); the rest keeps running.

    `b` starts every replica of b that is not running (or b.1 if b was never
    started); `b.3` starts that replica; `--add` adds one more replica.
    `server` restarts the embedded server on its database. A node that exits
    at start is reported with its last log lines.
    """
    with _reported():
        selector = parse_selector(node)
        if delay is not None and delay < 0:
            raise UsageError("--delay must be a number of seconds >= 0.")
        client = _client(run_dir)
        result = client.start(str(selector), delay, add)
        pids = {n["name"]: n["pid"] for n in client.status()["nodes"]}
    out = _console()
    for label in result["started"]:
        out.print(f"Started {label} (pid {pids.get(label)}); it is ready.")
    for label in result["already_running"]:
        out.print(
            f"{label} is already running (pid {pids.get(label)}); "
            f"`asyncrpc restart {label}` replaces it, `asyncrpc start {selector.node} --add` "
            "adds a replica."
        )


@app.command()
def restart(node: NodeArgument, run_dir: RunDirOption = None) -> None:
    """Stop a node cleanly (SIGTERM) and start a replacement.

    `b` restarts every replica of b, `b.2` one. The rest keeps running.
    """
    with _reported():
        selector = parse_selector(node)
        restarted = _client(run_dir).restart(str(selector))
    _console().print(f"Restarted {', '.join(restarted)}; ready.")


# -- logs -----------------------------------------------------------------------


def _log_files(rundir: RunDir, node: str | None) -> list[tuple[str, Path]]:
    selector = parse_selector(node) if node else None
    labels = []
    for label in rundir.log_labels():
        with contextlib.suppress(UsageError):
            parsed = parse_selector(label)
            slot = Slot(parsed.node, parsed.replica or 1)
            if selector is None or selector.matches(slot.node, slot.replica):
                labels.append((slot.order, label))
    return [(label, rundir.log_for(label)) for _, label in sorted(labels)]


def _launcher_running(rundir: RunDir) -> bool:
    from asyncrpc.launcher.control import connect

    try:
        connect(rundir)
    except LauncherError:
        return False
    return True


@app.command(
    epilog="Examples: [bold]asyncrpc logs[/bold] · [bold]asyncrpc logs b -f[/bold] · "
    "[bold]asyncrpc logs c.1 -n 20[/bold]",
)
def logs(
    node: Annotated[
        str | None,
        typer.Argument(
            help=f"Whose output: {_NODE_NAMES} (`b` every replica, `b.2` one). Default: all.",
            show_default=False,
        ),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Keep printing new output until Ctrl-C or the launcher stops."
        ),
    ] = False,
    lines: Annotated[
        int | None,
        typer.Option(
            "--lines", "-n", help="Only the last N lines of each log.", show_default=False
        ),
    ] = None,
    run_dir: RunDirOption = None,
) -> None:
    """Print what the processes wrote (kept in RUN_DIR/logs/NAME.log).

    Logs stay after [bold]asyncrpc down[/bold] (until [bold]down --clean[/bold]); a restarted
    node's output is appended to the same file. With several logs each line
    gets a prefix.
    """
    from asyncrpc.launcher import view

    out = _console()
    rundir = _rundir(run_dir)
    with _reported():
        files = _log_files(rundir, node)
        if not files:
            where = f"for {node} " if node else ""
            raise NothingRunning(f"no logs {where}in {rundir.logs}. Start with `asyncrpc up`.")
    many = len(files) > 1 or node is None
    for label, path in files:
        text = path.read_text(errors="replace").splitlines()
        shown = text[-lines:] if lines is not None and lines >= 0 else text
        if many:
            view.print_lines(out, [(label, line) for line in shown])
        else:
            for line in shown:
                print(line)
    if not follow:
        return
    follower = LogFollower()
    follower.skip_existing(path for _, path in files)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            running = _launcher_running(rundir)
            new = follower.poll(_log_files(rundir, node), final=not running)
            if many:
                view.print_lines(out, new)
            else:
                for _, line in new:
                    print(line, flush=True)
            if not running:
                break
            time.sleep(0.2)
