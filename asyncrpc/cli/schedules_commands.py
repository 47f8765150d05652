"""`asyncrpc schedules`: the schedules the server holds (cron, next run, last run).

Thin: :mod:`asyncrpc.ops.schedules` chooses the server and reads it (the embedded
server or resonate-pg alike), :mod:`asyncrpc.terminal.schedule_views` draws the answer.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from asyncrpc.cli.application import app
from asyncrpc.cli.options import JsonOption, ReadServerOption, RunDirOption
from asyncrpc.cli.reporting import console, print_json, reported, run_dir_of


@app.command(
    epilog="Examples: [bold]asyncrpc schedules[/bold] · "
    "[bold]asyncrpc schedules 'nightly-*' --json[/bold]",
)
def schedules(
    pattern: Annotated[
        str,
        typer.Argument(
            metavar="PATTERN",
            help="Schedule ids to list, * matching any characters (quote it from the shell).",
        ),
    ] = "*",
    as_json: JsonOption = False,
    server_url: ReadServerOption = None,
    run_dir: RunDirOption = None,
) -> None:
    """List the schedules on the server, the soonest next run first.

    A schedule creates a promise at each time its cron expression names (UTC). The table
    shows each one's id, cron, the group its promises go to, its next and last run, and
    the id its promises get. Both servers answer: the embedded server's schedule.search,
    resonate-pg's schedules table.
    """
    from asyncrpc.ops import promises
    from asyncrpc.ops.schedules import checked_pattern, list_schedules

    with reported():
        wanted = checked_pattern(pattern)
        server = promises.server_to_read(server_url, run_dir_of(run_dir), os.environ)
        found = list_schedules(server, wanted)
    if as_json:
        print_json({"pattern": pattern, "schedules": [record.to_json() for record in found]})
        return
    from asyncrpc.terminal import schedule_views as view

    out = console()
    if found:
        out.print(view.schedules_table(found))
    out.print(view.schedules_summary(found, pattern), markup=False)
