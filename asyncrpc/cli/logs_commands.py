"""`asyncrpc logs`: what the replicas wrote, kept in RUN_DIR/logs/NAME.log, and `-f` to follow."""

from __future__ import annotations

import contextlib
import json
from typing import Annotated

import typer

from asyncrpc.cli.application import app
from asyncrpc.cli.options import NODE_NAMES, RunDirOption, complete_nodes, number_option
from asyncrpc.cli.reporting import console, reported, run_dir_of
from asyncrpc.runtime.errors import NothingRunning
from asyncrpc.runtime.numbers import WholeNumber
from asyncrpc.supervise.targets import parse_node_selector

#: The most lines `logs -n` shows per log.
MAX_LOG_LINES = 1_000_000


@app.command(
    epilog="Examples: [bold]asyncrpc logs[/bold] · [bold]asyncrpc logs b -f[/bold] · "
    "[bold]asyncrpc logs c.1 -n 20[/bold]",
)
def logs(
    node: Annotated[
        str | None,
        typer.Argument(
            autocompletion=complete_nodes,
            help=f"Whose output: {NODE_NAMES} (`b` every replica, `b.2` one). Default: all.",
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
            parser=number_option(WholeNumber(0, MAX_LOG_LINES)),
            metavar="N",
            help="Only the last N lines of each log (0: none, e.g. with -f for new lines only).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help='One JSON object a line, {"replica": NAME, "line": TEXT}, for scripts.',
        ),
    ] = False,
    run_dir: RunDirOption = None,
) -> None:
    """Print what the replicas wrote (kept in RUN_DIR/logs/NAME.log).

    Logs stay after [bold]asyncrpc down[/bold] (until [bold]down --clean[/bold]); a restarted
    replica's output is appended to the same file. With several logs each
    line gets a prefix. With --json each line is a JSON object (JSON Lines), also with -f.
    """
    from asyncrpc.supervise.control_client import is_running
    from asyncrpc.supervise.log_files import follow_logs, last_lines, log_files
    from asyncrpc.terminal import status_table as view

    out = console()
    rundir = run_dir_of(run_dir)
    with reported():
        selector = parse_node_selector(node) if node else None
        files = log_files(rundir, selector)
        if not files:
            where = f"for {node} " if node else ""
            raise NothingRunning(f"no logs {where}in {rundir.logs}. Start with `asyncrpc up`.")
    many = len(files) > 1 or node is None

    def show(batch: list[tuple[str, str]]) -> None:
        if as_json:
            for name, line in batch:
                print(json.dumps({"replica": name, "line": line}), flush=True)
        elif many:
            view.print_lines(out, batch)
        else:
            for _, line in batch:
                print(line, flush=True)

    show(last_lines(files, lines))
    if follow:
        with contextlib.suppress(KeyboardInterrupt):
            for batch in follow_logs(rundir, selector, lambda: is_running(rundir)):
                show(batch)
