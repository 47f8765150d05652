"""`asyncrpc up / down / status (ps) / invoke (call) / kill / start / restart / logs`.

Thin Typer commands over :mod:`asyncrpc.launcher`: each parses its options,
calls one plain function of the launcher and prints. Every foreseen failure is
a :class:`~asyncrpc.launcher.errors.LauncherError`, printed as one clear
message with its exit code (2 for a wrong name or value, 1 otherwise).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from asyncrpc import config, topology
from asyncrpc.cli.options import (
    DashboardPortOption,
    GatewayPortOption,
    ReadyTimeoutOption,
    SchemaOption,
    ServerKindOption,
    ServerPortOption,
    ServerUrlOption,
    seconds_option,
    whole_number_option,
)
from asyncrpc.cli.typer_app import app
from asyncrpc.launcher.errors import LauncherError, NothingRunning
from asyncrpc.launcher.rundir import RunDir
from asyncrpc.launcher.targets import parse_node_selector

if TYPE_CHECKING:
    from rich.console import Console

    from asyncrpc.launcher.calls import CallStart
    from asyncrpc.launcher.control_client import ControlClient
    from asyncrpc.launcher.status import LauncherSnapshot

# The heavier launcher modules (httpx, fastapi, uvicorn, the SDK) are imported inside the
# commands, so `asyncrpc node ...` and `asyncrpc server ...` do not pay for them at start.


@functools.cache
def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


#: The most lines `logs -n` shows per log.
MAX_LOG_LINES = 1_000_000

_NODE_NAMES = ", ".join(topology.PROCESS_NAMES)
_FLOW_NAMES = ", ".join(topology.flow_names())


def _completes(*names: str) -> Callable[[str], list[str]]:
    """Shell completion of an argument: the ``names`` that start with what was typed."""
    return lambda incomplete: [name for name in names if name.startswith(incomplete)]


_complete_nodes = _completes(*topology.PROCESS_NAMES)

RunDirOption = Annotated[
    Path | None,
    typer.Option(
        "--run-dir",
        help="The run directory: where the supervisor keeps its state, logs and database. "
        f"Default: ${config.ENV_RUN_DIR}, else ./.asyncrpc.",
        show_default=False,
    ),
]


class SignalName(StrEnum):
    KILL = "KILL"
    TERM = "TERM"


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """Turn a LauncherError into its message on stderr and its exit code.

    The message may quote what a person typed; it is printed literally, never as markup.
    """
    from rich.markup import escape

    try:
        yield
    except LauncherError as error:
        _console(stderr=True).print(
            f"[red]error:[/red] {escape(str(error))}", markup=True, highlight=False, soft_wrap=True
        )
        raise typer.Exit(error.exit_code) from None


def _rundir(run_dir: Path | None) -> RunDir:
    return RunDir((run_dir or config.run_dir(os.environ)).resolve())


def _client(run_dir: Path | None) -> ControlClient:
    from asyncrpc.launcher.control_client import connect

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
            autocompletion=_completes(*topology.FLOWS, topology.GATEWAY, *topology.NODES),
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
            parser=seconds_option(),
            metavar="SECONDS",
            help="Start a replica that died (crashed or was killed) again after SECONDS. "
            "Off by default.",
            show_default=False,
        ),
    ] = None,
    ttl: Annotated[
        float | None,
        typer.Option(
            parser=seconds_option(positive=True),
            metavar="SECONDS",
            help="Task lease of every worker node, in seconds (how soon a crashed node's "
            f"step is handed over). Default: the node's own ({config.DEFAULT_NODE_TTL:g}).",
            show_default=False,
        ),
    ] = None,
    server_url: ServerUrlOption = None,
    server: ServerKindOption = "embedded",
    schema: SchemaOption = None,
    server_port: ServerPortOption = config.DEFAULT_SERVER_PORT,
    gateway_port: GatewayPortOption = config.DEFAULT_GATEWAY_PORT,
    dashboard_port: DashboardPortOption = config.DEFAULT_DASHBOARD_PORT,
    no_dashboard: Annotated[
        bool, typer.Option("--no-dashboard", help="Do not serve the web dashboard.")
    ] = False,
    ready_timeout: ReadyTimeoutOption = 30.0,
    run_dir: RunDirOption = None,
) -> None:
    """Start the server, the gateway and the nodes; wait until all are ready.

    The embedded server runs unless [bold]--server-url[/bold] (or RESONATE_URL)
    names a server that answers; its database is RUN_DIR/server.db. With
    [bold]--server postgres[/bold] a local Postgres with resonate.sql is the
    server instead (node `postgres`, data in RUN_DIR/postgres). Then
    the gateway, then the nodes; each is checked for readiness (health URL
    or its ready line), then a table shows what runs where.

    In the foreground every replica's output streams with a coloured
    prefix; [bold]Ctrl-C[/bold] stops everything. With [bold]--detach[/bold] it returns once
    ready. Either way other terminals can use [bold]status, call, kill,[/bold]
    [bold]start, restart, logs, down[/bold]. Logs: RUN_DIR/logs/NAME.log.
    The web dashboard ([bold]asyncrpc ui[/bold]) shows and drives it all from a browser.
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
        dashboard_port=None if no_dashboard else dashboard_port,
        ttl=ttl,
        respawn=respawn,
        ready_timeout=ready_timeout,
        server=server,
        schema=schema,
    )
    rundir = _rundir(run_dir)
    with _reported():
        plan = prepare(options, os.environ, rundir.path, notify=_say)
        if detach:
            snapshot = start_detached(plan, os.environ)
            view.print_status(out, snapshot)
            out.print(
                "Everything is ready; [bold]asyncrpc down[/bold] stops it all. "
                + view.try_next(snapshot, lead="Try")
            )
            return

        def ready(snapshot: LauncherSnapshot) -> None:
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

    Works even if the supervisor itself died: the replicas listed in its
    state file are stopped (only if they are still the very processes it
    started). Nothing running is not an error.
    """
    from asyncrpc.launcher.down import remove_leftovers, stop_everything

    out = _console()
    rundir = _rundir(run_dir)
    with _reported():
        result = stop_everything(rundir, notify=_say)
    if result.nothing_was_running:
        out.print(f"Nothing was running in {rundir.path}.", markup=False)
    if result.stopped:
        out.print(f"Stopped {', '.join(result.stopped)}.")
    if clean:
        remove_leftovers(rundir)
        out.print(f"Removed the logs and the database in {rundir.path}.", markup=False)


# -- status / ps ----------------------------------------------------------------


def _status(as_json: bool, run_dir: Path | None) -> None:
    with _reported():
        snapshot = _client(run_dir).status()
    if as_json:
        print(json.dumps(snapshot.to_json(), indent=1))
    else:
        from asyncrpc.launcher import view

        view.print_status(_console(), snapshot)


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command()
def status(as_json: JsonOption = False, run_dir: RunDirOption = None) -> None:
    """Show what runs: node, group, replica, pid, state, uptime, restarts.

    A replica is starting, running, exited (it ended by itself), killed (by a
    signal) or stopped (by the supervisor). Also prints the server and gateway URLs. Exits 1 when
    nothing is running.
    """
    _status(as_json, run_dir)


@app.command("ps")
def ps(as_json: JsonOption = False, run_dir: RunDirOption = None) -> None:
    """Same as [bold]asyncrpc status[/bold]."""
    _status(as_json, run_dir)


# -- invoke (call) --------------------------------------------------------------

_INVOKE_EXAMPLES = (
    "Examples: [bold]asyncrpc invoke await-chain[/bold] · "
    "[bold]asyncrpc invoke fan-out --json[/bold] · "
    "[bold]asyncrpc invoke await-chain --id await-chain-3f9a1c2e[/bold] (re-attach)"
)


@app.command("invoke", epilog=_INVOKE_EXAMPLES)
def invoke(
    flow: Annotated[
        str,
        typer.Argument(
            autocompletion=_completes(*topology.FLOWS), help=f"The flow to call: {_FLOW_NAMES}."
        ),
    ],
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
        float,
        typer.Option(
            parser=seconds_option(positive=True),
            metavar="SECONDS",
            help="Seconds to wait for the result before giving up.",
        ),
    ] = 60.0,
    as_json: JsonOption = False,
    gateway_url: Annotated[
        str | None,
        typer.Option(
            help=f"Gateway to call. Default: ${config.ENV_GATEWAY_URL}, else the supervisor's.",
            show_default=False,
        ),
    ] = None,
    run_dir: RunDirOption = None,
) -> None:
    """Call a flow through the gateway; print its result and the time taken.

    await-chain and fan-out return their result to the caller; the detached
    chain returns at once, so its result is the value its last step (cog)
    stored, read from the server. A call survives a gateway restart. On
    timeout the invocation goes on: re-attach with --id. [bold]asyncrpc call[/bold]
    is the same command.
    """
    from rich.markup import escape

    from asyncrpc.launcher.calls import call_flow

    out = _console()

    def announce(start: CallStart) -> None:
        if start.missing:
            _console(stderr=True).print(
                f"note: {', '.join(start.missing)} not running here; the call waits until a "
                f"node serves each step (e.g. `asyncrpc start {start.missing[0]}`).",
                markup=False,
            )
        if not as_json:
            the_id = escape(start.invocation_id)
            again = f" (wait for it again with --id {the_id})" if start.fresh else ""
            out.print(f"calling {start.flow.name} as invocation [bold]{the_id}[/bold]{again}")

    with _reported():
        result = call_flow(
            flow,
            invocation_id=invocation_id,
            timeout=timeout,
            gateway_url=gateway_url,
            env=os.environ,
            rundir=_rundir(run_dir),
            on_start=announce,
        )
    if as_json:
        print(json.dumps(result.to_json()))
    else:
        value = escape(json.dumps(result.result))
        out.print(f"result: [bold]{value}[/bold] ({result.seconds:.2f}s)")


app.command(
    "call",
    help="Same as [bold]asyncrpc invoke[/bold]: call a flow through the gateway and print "
    "its result.",
    epilog=_INVOKE_EXAMPLES,
)(invoke)


# -- kill / start / restart -----------------------------------------------------

NodeArgument = Annotated[
    str,
    typer.Argument(
        autocompletion=_complete_nodes,
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
    """Signal each replica of a node (SIGKILL by default: a crash); wait until it is gone.

    The server and the gateway are nodes too. Only a process the supervisor
    started and that is still that same process is signalled (a recycled pid
    is never touched). Bring a replacement up with [bold]asyncrpc start NODE[/bold];
    with [bold]up --respawn[/bold] that happens by itself.
    """
    with _reported():
        selector = parse_node_selector(node)
        killed = _client(run_dir).kill(str(selector), signal_name.value)
    _console().print(f"Sent SIG{signal_name.value} to {', '.join(killed)}; it is gone.")


@app.command()
def start(
    node: NodeArgument,
    delay: Annotated[
        float | None,
        typer.Option(
            parser=seconds_option(),
            metavar="SECONDS",
            help="Crash-demo delay (seconds) for the started node; default: as before.",
            show_default=False,
        ),
    ] = None,
    add: Annotated[
        bool, typer.Option("--add", help="Start one more replica of a worker node.")
    ] = False,
    run_dir: RunDirOption = None,
) -> None:
    """Start a node's replicas (a replacement after a crash); the rest keeps running.

    `b` starts every replica of b that is not running (or b.1 if b was never
    started); `b.3` starts that replica; `--add` adds one more replica.
    `server` restarts the embedded server on its database. A replica that
    exits at start is reported with its last log lines.
    """
    with _reported():
        selector = parse_node_selector(node)
        result = _client(run_dir).start(str(selector), delay, add)
    out = _console()
    for name in result.started:
        out.print(f"Started {name} (pid {result.pids.get(name)}); it is ready.")
    for name in result.already_running:
        out.print(
            f"{name} is already running (pid {result.pids.get(name)}); "
            f"`asyncrpc restart {name}` replaces it, `asyncrpc start {selector.node} --add` "
            "adds a replica."
        )


@app.command()
def restart(node: NodeArgument, run_dir: RunDirOption = None) -> None:
    """Stop a node's replicas cleanly (SIGTERM) and start replacements.

    `b` restarts every replica of b, `b.2` one. The rest keeps running.
    """
    with _reported():
        selector = parse_node_selector(node)
        restarted = _client(run_dir).restart(str(selector))
    _console().print(f"Restarted {', '.join(restarted)}; ready.")


# -- logs -----------------------------------------------------------------------


@app.command(
    epilog="Examples: [bold]asyncrpc logs[/bold] · [bold]asyncrpc logs b -f[/bold] · "
    "[bold]asyncrpc logs c.1 -n 20[/bold]",
)
def logs(
    node: Annotated[
        str | None,
        typer.Argument(
            autocompletion=_complete_nodes,
            help=f"Whose output: {_NODE_NAMES} (`b` every replica, `b.2` one). Default: all.",
            show_default=False,
        ),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Keep printing new output until Ctrl-C or the supervisor stops."
        ),
    ] = False,
    lines: Annotated[
        int | None,
        typer.Option(
            "--lines",
            "-n",
            parser=whole_number_option(0, MAX_LOG_LINES),
            metavar="N",
            help="Only the last N lines of each log (0: none, e.g. with -f for new lines only).",
            show_default=False,
        ),
    ] = None,
    run_dir: RunDirOption = None,
) -> None:
    """Print what the replicas wrote (kept in RUN_DIR/logs/NAME.log).

    Logs stay after [bold]asyncrpc down[/bold] (until [bold]down --clean[/bold]); a restarted
    replica's output is appended to the same file. With several logs each
    line gets a prefix.
    """
    from asyncrpc.launcher import view
    from asyncrpc.launcher.control_client import is_running
    from asyncrpc.launcher.logtail import follow_logs, last_lines, log_files

    out = _console()
    rundir = _rundir(run_dir)
    with _reported():
        selector = parse_node_selector(node) if node else None
        files = log_files(rundir, selector)
        if not files:
            where = f"for {node} " if node else ""
            raise NothingRunning(f"no logs {where}in {rundir.logs}. Start with `asyncrpc up`.")
    many = len(files) > 1 or node is None

    def show(batch: list[tuple[str, str]]) -> None:
        if many:
            view.print_lines(out, batch)
        else:
            for _, line in batch:
                print(line, flush=True)

    show(last_lines(files, lines))
    if follow:
        with contextlib.suppress(KeyboardInterrupt):
            for batch in follow_logs(rundir, selector, lambda: is_running(rundir)):
                show(batch)


# -- ui -------------------------------------------------------------------------


@app.command()
def ui(
    no_open: Annotated[
        bool, typer.Option("--no-open", help="Only print the dashboard's URL.")
    ] = False,
    run_dir: RunDirOption = None,
) -> None:
    """Open the running supervisor's web dashboard in a browser (and print its URL)."""
    import webbrowser

    with _reported():
        url = _client(run_dir).status().dashboard_url
        if url is None:
            raise LauncherError(
                "this supervisor serves no dashboard (it was started with --no-dashboard). "
                "Stop it with `asyncrpc down` and start it again without that option."
            )
    _console().print(f"dashboard: {url}", highlight=False)
    if not no_open and not webbrowser.open(url):
        _console(stderr=True).print("no browser found here: open the URL above yourself.")
