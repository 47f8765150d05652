"""`asyncrpc tree ID`: the durable call graph of one invocation."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from asyncrpc.cli.application import app
from asyncrpc.cli.options import JsonOption, ReadServerOption, RunDirOption
from asyncrpc.cli.reporting import print_json, reported, run_dir_of


@app.command()
def tree(
    invocation_id: Annotated[
        str, typer.Argument(metavar="ID", help="The invocation (root promise) id.")
    ],
    server_url: ReadServerOption = None,
    as_json: JsonOption = False,
    run_dir: RunDirOption = None,
) -> None:
    """Show the durable call graph of an invocation: each promise's function, group, state,
    value and duration. Works while the flow runs (pending branches show) and after.

    It reads the server of the system running in the run directory (or the one
    --server-url or $RESONATE_URL names); with none of them it says so rather than
    guess an address where another system may listen.
    """
    # Imported here so other commands do not pay for them at start-up.
    from asyncrpc.ops import promises

    with reported():
        server = promises.server_to_read(server_url, run_dir_of(run_dir), os.environ)
        root = promises.call_graph(server, invocation_id)
    if as_json:
        print_json(root.to_json())
    else:
        from rich.console import Console

        from asyncrpc.terminal.call_graph_tree import render

        Console().print(render(root))
