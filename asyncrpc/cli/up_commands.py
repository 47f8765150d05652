"""`asyncrpc up` and `asyncrpc down`: start everything and wait until it is ready, stop it all.

Thin Typer commands over :mod:`asyncrpc.ops.up` and :mod:`asyncrpc.ops.down`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from asyncrpc.cli.application import app
from asyncrpc.cli.options import (
    FLOW_NAMES,
    DashboardPortOption,
    GatewayPortOption,
    JsonOption,
    ReadyTimeoutOption,
    RunDirOption,
    SchemaOption,
    ServerKindOption,
    ServerPortOption,
    ServerUrlOption,
    completes,
    parse_positive_seconds,
    parse_seconds,
)
from asyncrpc.cli.reporting import console, fail, print_json, reported, run_dir_of, say
from asyncrpc.lesson import topology
from asyncrpc.runtime import config
from asyncrpc.runtime.errors import EXIT_USAGE

if TYPE_CHECKING:
    from asyncrpc.supervise.status import LauncherSnapshot
    from asyncrpc.supervise.supervisor_process import DashboardOpener

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
            autocompletion=completes(*topology.FLOWS, topology.GATEWAY, *topology.NODES),
            help=f"Flows ({FLOW_NAMES}) and/or nodes (gateway, "
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
            parser=parse_seconds,
            metavar="SECONDS",
            help="Start a replica that died (crashed or was killed) again after SECONDS. "
            "Off by default.",
            show_default=False,
        ),
    ] = None,
    ttl: Annotated[
        float | None,
        typer.Option(
            parser=parse_positive_seconds,
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
    as_json: Annotated[
        bool,
        typer.Option("--json", help="With --detach: print what runs as JSON (as `status --json`)."),
    ] = False,
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
    prefix; [bold]Ctrl-C[/bold] stops everything. With [bold]--detach[/bold] it shows which
    replicas are ready while it waits, and returns once all are. Either way other
    terminals can use [bold]status, call, kill, start, restart, logs, down[/bold].
    Logs: RUN_DIR/logs/NAME.log. The web dashboard ([bold]asyncrpc ui[/bold])
    shows and drives it all from a browser.
    """
    from asyncrpc.ops import up_early
    from asyncrpc.ops.up import UpOptions, prepare, run_foreground, spawn_detached

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
    rundir = run_dir_of(run_dir)
    if as_json and not detach:
        fail("--json reports what --detach started: give both, or neither.", EXIT_USAGE)
    with reported():
        lock = rundir.claim()  # before anything is checked or written: one `up` at a time
        try:
            plan = prepare(options, os.environ, rundir.path, notify=say)
            if detach:
                # The template the program forked as it started, if it did (asyncrpc.ops.up_early).
                early = up_early.claim()
                detached = spawn_detached(plan, os.environ, lock, early)
                # rich and the table load while the template does (two cores): only printing
                # needs them, once everything is ready.
                from asyncrpc.terminal import status_table  # noqa: F401
                from asyncrpc.terminal.progress import ReadyProgress

                with ReadyProgress(console(stderr=True)) as progress:
                    snapshot = detached.wait(on_progress=progress.update)
            else:
                from asyncrpc.terminal import status_table as view

                out = console()

                def ready(snapshot: LauncherSnapshot) -> None:
                    view.print_status(out, snapshot)
                    out.print(
                        "Everything is ready; [bold]Ctrl-C[/bold] stops it all. "
                        + view.try_next(snapshot)
                    )

                open_dashboard: DashboardOpener | None = None
                if plan.dashboard_port:  # its web stack is imported only when it is served
                    from asyncrpc.dashboard.serve import open_dashboard as opener

                    open_dashboard = opener

                run_foreground(
                    plan,
                    os.environ,
                    notify=say,
                    on_ready=ready,
                    follow=lambda supervisor: view.stream_output(supervisor, out),
                    open_dashboard=open_dashboard,
                    lock=lock,
                )
                return
        finally:
            lock.release()
        if as_json:
            print_json({"running": True, **snapshot.to_json()})
            return
        from asyncrpc.terminal import status_table as view

        out = console()
        view.print_status(out, snapshot)
        out.print(
            "Everything is ready; [bold]asyncrpc down[/bold] stops it all. "
            + view.try_next(snapshot, lead="Try")
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
    as_json: JsonOption = False,
    run_dir: RunDirOption = None,
) -> None:
    """Stop everything [bold]asyncrpc up[/bold] started, detached or not.

    Works even if the supervisor itself died: the replicas listed in its
    state file are stopped (only if they are still the very processes it
    started). Nothing running is not an error.
    """
    from asyncrpc.ops.down import remove_leftovers, stop_everything

    out = console()
    rundir = run_dir_of(run_dir)
    with reported():
        result = stop_everything(rundir, notify=say)
    if clean:
        remove_leftovers(rundir)
    if as_json:
        print_json(
            {
                "run_dir": str(rundir.path),
                "stopped": result.stopped,
                "nothing_was_running": result.nothing_was_running,
                "cleaned": clean,
            }
        )
        return
    if result.nothing_was_running:
        out.print(f"Nothing was running in {rundir.path}.", markup=False)
    if result.stopped:
        out.print(f"Stopped {', '.join(result.stopped)}.")
    if clean:
        out.print(f"Removed the logs and the database in {rundir.path}.", markup=False)
